"""Mail over the private Tor network: smtplib -> client tor -> onion service -> ingest."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from email import message_from_bytes
from typing import Any
from unittest import mock

import pytest

from tests.e2e.conftest import MailOnion
from tests.e2e.tornet import TorNetwork
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
