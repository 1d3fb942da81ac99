"""Mail over the private Tor network: smtplib -> client tor -> onion service -> ingest."""

from __future__ import annotations

import re
import smtplib
import socket
from collections.abc import Callable
from email import message_from_bytes
from typing import Any
from unittest import mock

import pytest

from onionpost import tor
from tests.e2e.conftest import MailOnion
from tests.e2e.tornet import TorNetwork
from tests.support.events import queued_events
from tests.support.net import wait_for
from tests.support.servers import IngestProcess

pytestmark = pytest.mark.e2e

# What a Received line may say: our onion, the protocol, an id and a UTC date. Nothing else.
RECEIVED = (r"by {onion} \(onionpost\) with ESMTPS? id [0-9A-F]+;"
            r"\s+\w{{3}}, \d+ \w{{3}} \d{{4}} [\d:]+ \+0000")
# Loopback peers and tor's per-circuit PROXY source addresses.
ADDRESSES = ("127.0.0.1", "::1", "fc00:")


def no_onion_lookups(getaddrinfo: Callable[..., Any]) -> Callable[..., Any]:
    def lookup(host: object, *args: object, **kwargs: object) -> Any:
        assert ".onion" not in str(host), f"{host} was resolved locally"
        return getaddrinfo(host, *args, **kwargs)
    return lookup


def message(subject: str) -> bytes:
    return (f"From: sender@example.onion\r\nTo: owner\r\nSubject: {subject}\r\n\r\n"
            f"body of {subject}\r\n").encode()


def test_smtplib_through_socks_lands_in_the_maildir(
        tor_network: TorNetwork, mail_onion: MailOnion,
        onion_ingest: Callable[..., IngestProcess]) -> None:
    ingest = onion_ingest()
    # The .onion name goes to tor as a name (SOCKS5 remote resolution): never resolved here.
    with mock.patch("socket.getaddrinfo", side_effect=no_onion_lookups(socket.getaddrinfo)):
        client = tor_network.smtp(mail_onion.address)
    with client:
        client.ehlo("sender.example")
        refused = client.sendmail("sender@example.onion", [f"owner@{mail_onion.address}"],
                                  message("over tor"))
    assert refused == {}
    [path] = ingest.messages()
    stored = path.read_bytes()
    parsed = message_from_bytes(stored)
    assert parsed["Subject"] == "over tor"
    received = parsed["Received"]
    assert re.fullmatch(RECEIVED.format(onion=re.escape(mail_onion.address)), received), received
    assert not [address for address in ADDRESSES if address in stored.decode().lower()]


def stored_circuits(redis_url: str) -> list[str]:
    """The circuit id of every event ingest enqueued, in order."""
    return [event["circuit"] for event in queued_events(redis_url)]


def test_each_circuit_has_its_own_limits(
        tor_network: TorNetwork, mail_onion: MailOnion, redis_url: str,
        onion_ingest: Callable[..., IngestProcess]) -> None:
    ingest = onion_ingest(circuit_messages_per_minute=3, circuit_max_sessions=2)
    rcpt = [f"owner@{mail_onion.address}"]
    flooder = tor_network.smtp(mail_onion.address, isolation="flooder")
    codes = []
    for number in range(5):
        try:
            flooder.sendmail("flood@example.onion", rcpt, message(f"flood {number}"))
            codes.append(250)
        except smtplib.SMTPSenderRefused as error:
            codes.append(error.smtp_code)
    assert codes == [250, 250, 250, 450, 450]
    # The flooder's circuit holds 2 sessions: a third is turned away at the greeting.
    second = tor_network.smtp(mail_onion.address, isolation="flooder")
    with pytest.raises(smtplib.SMTPConnectError) as turned_away:
        tor_network.smtp(mail_onion.address, isolation="flooder")
    assert turned_away.value.smtp_code == 421
    # Meanwhile another sender, on its own circuit, is served.
    with tor_network.smtp(mail_onion.address, isolation="honest") as honest:
        assert honest.sendmail("honest@example.onion", rcpt, message("honest")) == {}
    with pytest.raises(smtplib.SMTPSenderRefused):
        flooder.sendmail("flood@example.onion", rcpt, message("flood again"))
    flooder.quit()
    second.quit()

    assert len(ingest.messages()) == 4
    wait_for(lambda: len(stored_circuits(redis_url)) == 4, what="4 message_stored events")
    circuits = stored_circuits(redis_url)
    assert len(set(circuits[:3])) == 1  # one circuit for the flooder's messages ...
    assert circuits[3] != circuits[0]  # ... another one for the honest sender


def test_pow_and_intro_dos_defenses_are_on_and_mail_flows(
        tor_network: TorNetwork, mail_onion: MailOnion,
        onion_ingest: Callable[..., IngestProcess]) -> None:
    ingest = onion_ingest()
    with mail_onion.service.controller() as controller:
        pow_state = tor.pow_state(controller, mail_onion.address)
        intro_defense = controller.get_conf("HiddenServiceEnableIntroDoSDefense")
    assert pow_state is not None
    assert pow_state.enabled  # the published descriptor carries pow-params
    assert pow_state.scheme == "v1"
    assert intro_defense == "1"
    tor_network.new_identity()  # a fresh descriptor fetch and introduction, under PoW
    with tor_network.smtp(mail_onion.address, isolation="pow") as client:
        assert client.sendmail("a@example.onion", [f"owner@{mail_onion.address}"],
                               message("under pow")) == {}
    [path] = ingest.messages()
    assert b"Subject: under pow" in path.read_bytes()
