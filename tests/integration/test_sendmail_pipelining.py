"""sendmail's round trips: against ingest it pipelines (4 turns; 7 with STARTTLS on), a
refused recipient in a pipelined group stores nothing, and a server without PIPELINING gets
one command at a time. The connection goes through tor_connector's SOCKS5 to a relay that
counts turns (tests/support/slow_relay.py), with no delay."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.net import free_port
from tests.support.servers import IngestProcess
from tests.support.slow_relay import SlowRelay

from onionpost import onion
from onionpost.sender import invocation, message, sendmail
from onionpost.sender.transport import tor_connector
from onionpost.settings import Settings


def new_onion() -> str:
    return onion.from_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())


OURS, ALICE = new_onion(), new_onion()
LETTER = f"From: me@{OURS}\nSubject: piped\n\n.starts with a dot\nbody\n".encode()
REFUSED = f"{'x' * 70}@{ALICE}"  # a local part over 64 octets: ingest says 553 5.1.3


def send(relay: SlowRelay, recipients: list[str], *flags: str, **settings: Any) -> int:
    config = Settings(**{"domain": OURS, "send_retry_delays": "0", **settings})
    call = invocation.parse(["-i", *flags, *recipients])
    raw = message.read(io.BytesIO(LETTER), call.dots_end_message)
    return sendmail.send(call, raw, config, lambda _: None, tor_connector("127.0.0.1", relay.port),
                         err=io.StringIO(), out=io.StringIO(), sleep=lambda _: None)


@pytest.fixture
def alice(start_ingest: Callable[..., IngestProcess], tmp_path: Path) -> IngestProcess:
    return start_ingest(maildir=tmp_path / "alice" / "inbox", domain=ALICE)


def test_a_delivery_takes_four_turns_by_default(alice: IngestProcess) -> None:
    with SlowRelay(0.0, {ALICE: alice.port}) as relay:
        assert send(relay, [f"a@{ALICE}", f"b@{ALICE}"]) == 0
    [traffic] = relay.connections
    assert traffic.turns() == 4  # banner, EHLO, MAIL+RCPT+RCPT+DATA, body+dot+QUIT
    [path] = alice.messages()
    stored = path.read_bytes()
    assert b"with ESMTP id" in stored  # no STARTTLS
    assert stored.endswith(b"\r\n.starts with a dot\r\nbody\r\n")  # dot-stuffing undone
    assert "rcpts=2" in alice.logs()


def test_with_starttls_on_a_delivery_takes_at_most_seven_turns(alice: IngestProcess) -> None:
    with SlowRelay(0.0, {ALICE: alice.port}) as relay:
        assert send(relay, [f"a@{ALICE}"], send_starttls="on") == 0
    [traffic] = relay.connections
    assert traffic.turns() <= 7
    [path] = alice.messages()
    assert b"with ESMTPS id" in path.read_bytes()


def test_a_refused_recipient_in_the_group_means_nothing_is_stored(alice: IngestProcess) -> None:
    """The server answers 250, 553, 250, 354: sendmail closes instead of sending the body,
    and ingest stores nothing (no final dot, no message)."""
    with SlowRelay(0.0, {ALICE: alice.port}) as relay:
        assert send(relay, [f"a@{ALICE}", REFUSED, f"b@{ALICE}"]) == 67
    [traffic] = relay.connections
    assert traffic.turns() == 3  # banner, EHLO, the group's replies: then the close
    assert traffic.directions[-1] == "s>c"  # no body went out after the 354
    assert alice.messages() == []


def test_with_partial_the_accepted_recipients_get_it(alice: IngestProcess) -> None:
    with SlowRelay(0.0, {ALICE: alice.port}) as relay:
        assert send(relay, [f"a@{ALICE}", REFUSED, f"b@{ALICE}"], "--partial") == 67
    assert len(alice.messages()) == 1
    assert "rcpts=2" in alice.logs()


class Keeper:
    """aiosmtpd without PIPELINING (it never offers it): remembers each message."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content or b""))
        return "250 2.0.0 OK"


@pytest.fixture
def plain_server() -> Iterator[tuple[Keeper, int]]:
    keeper, port = Keeper(), free_port()
    controller = Controller(keeper, hostname="127.0.0.1", port=port)
    controller.start()
    yield keeper, port
    controller.stop()


def test_a_server_without_pipelining_gets_one_command_at_a_time(
        plain_server: tuple[Keeper, int]) -> None:
    keeper, port = plain_server
    with SlowRelay(0.0, {ALICE: port}) as relay:
        assert send(relay, [f"a@{ALICE}", f"b@{ALICE}"]) == 0
    [traffic] = relay.connections
    # banner, EHLO, MAIL, RCPT, RCPT, DATA, body, QUIT
    assert traffic.turns() == 8
    [(recipients, content)] = keeper.messages
    assert recipients == [f"a@{ALICE}", f"b@{ALICE}"]
    assert content.endswith(b"\r\n.starts with a dot\r\nbody\r\n")


class PipeliningKeeper(Keeper):
    """aiosmtpd offering PIPELINING (it reads and answers command by command, in order, so
    it copes); the first message gets a 451 after its final dot."""

    def __init__(self) -> None:
        super().__init__()
        self.refusals = ["451 4.3.0 Try again"]

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refusals:
            return self.refusals.pop()
        return await super().handle_DATA(server, session, envelope)


def test_a_4xx_after_the_pipelined_body_redoes_the_transaction() -> None:
    keeper, port = PipeliningKeeper(), free_port()
    controller = Controller(keeper, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with SlowRelay(0.0, {ALICE: port}) as relay:
            assert send(relay, [f"a@{ALICE}"], send_retry_delays="0.1") == 0
    finally:
        controller.stop()
    assert [traffic.turns() for traffic in relay.connections] == [4, 4]
    assert [recipients for recipients, _ in keeper.messages] == [[f"a@{ALICE}"]]
