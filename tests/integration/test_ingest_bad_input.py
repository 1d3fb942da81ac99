"""Hostile input: odd local parts, garbage, pipelining abuse, SMTP smuggling. Every answer
has the right code and the server stays up."""

from __future__ import annotations

import os
import re
import smtplib
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import TEST_DOMAIN
from tests.integration.conftest import RCPT, stored_bodies
from tests.support.servers import IngestProcess
from tests.support.smtp import RawSMTP, session_until_data

OUR_NAME = re.compile(r"\A\d+\.M\d+R[0-9A-F]{12}\.onionpost,S=\d+\Z")
MESSAGE = b"Subject: ok\r\n\r\nfine\r\n"


@pytest.fixture
def tolerant(start_ingest: Callable[..., IngestProcess]) -> IngestProcess:
    """Limits out of the way, so that only the input under test decides the answers."""
    return start_ingest(circuit_max_sessions=50, circuit_messages_per_minute=10_000,
                        junk_command_limit=10_000)


def still_serving(ingest: IngestProcess) -> bool:
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        return client.sendmail("a@example.org", [RCPT], MESSAGE) == {}


def all_files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


@pytest.mark.parametrize("local", [
    "../../x", "..", "x/../../etc/passwd", "/abs/path", "new/evil", "~root", "a" * 64,
    "quoted\\\"part", "ünïcödé", "tab\there",
])
def test_odd_but_harmless_local_parts_are_stored_under_our_names_only(
        tolerant: IngestProcess, local: str) -> None:
    root = tolerant.maildir.parent
    before = all_files(root)
    with RawSMTP(tolerant.port) as client:
        client.greeting()
        client.command("EHLO client.example")
        client.command("MAIL FROM:<a@example.org> SMTPUTF8")
        reply = client.command(f"RCPT TO:<{local}@{TEST_DOMAIN}>".encode())
        assert (reply.code, reply.enhanced) in ((250, "2.1.5"), (553, "5.1.3"),
                                                (501, "5.5.4"), (550, "5.7.1")), reply
        if reply.code == 250:
            assert client.command("DATA").code == 354
            client.send(MESSAGE + b".\r\n")
            assert client.reply().code == 250
    created = all_files(root) - before
    assert all(name.startswith("inbox/new/") and OUR_NAME.match(name[10:])
               for name in created if not name.startswith("ingest-")), created
    assert not (root.parent / "x").exists()


@pytest.mark.parametrize("local", [
    b"a\x00b", b"nul\x00", b"bell\x07", b"esc\x1b[31m", b"del\x7f",
    b"\xff\xfe", b"a" * 65, b"ok\x0bvt",
])
def test_control_bytes_and_overlong_local_parts_are_refused(
        tolerant: IngestProcess, local: bytes) -> None:
    with RawSMTP(tolerant.port) as client:
        client.greeting()
        client.command("EHLO client.example")
        assert client.command("MAIL FROM:<a@example.org>").code == 250
        reply = client.command(b"RCPT TO:<" + local + b"@" + TEST_DOMAIN.encode() + b">")
        assert reply.code in (501, 553), reply
        assert reply.enhanced in ("5.1.3", "5.5.4", "5.5.2"), reply
        assert client.command("NOOP").code == 250
    assert tolerant.messages() == []
    assert still_serving(tolerant)


def test_binary_garbage_gets_5xx_then_goodbye_and_the_server_stays_up(
        tolerant: IngestProcess) -> None:
    garbage = os.urandom(4096).replace(b"\n", b"\r\n")
    with RawSMTP(tolerant.port) as client:
        client.greeting()
        client.send(garbage + b"\r\n" + b"XYZZY\r\n" * 20)
        replies = []
        while (reply := client.reply()) is not None:
            replies.append(reply)
        assert replies
        assert all(500 <= reply.code < 600 for reply in replies), replies
        assert all(reply.enhanced.startswith("5.") for reply in replies), replies
        assert replies[-1].code == 502  # too many unrecognised commands: goodbye
    assert still_serving(tolerant)


def test_pipelined_session_in_one_write_is_answered_in_order(tolerant: IngestProcess) -> None:
    script = (b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n"
              + f"RCPT TO:<{RCPT}>\r\nRCPT TO:<x@evil.example>\r\n".encode()
              + b"DATA\r\n" + MESSAGE + b".\r\nNOOP\r\nQUIT\r\n")
    with RawSMTP(tolerant.port) as client:
        client.greeting()
        client.send(script)
        codes = []
        while (reply := client.reply()) is not None:
            codes.append(reply.code)
    assert codes == [250, 250, 250, 550, 354, 250, 250, 221]
    assert stored_bodies(tolerant) == [MESSAGE]


def test_a_flood_of_pipelined_commands_is_answered_and_survived(
        tolerant: IngestProcess) -> None:
    with RawSMTP(tolerant.port) as client:
        client.greeting()
        client.send(b"EHLO client.example\r\n" + b"NOOP\r\n" * 3000
                    + b"MAIL FROM:<a@example.org>\r\n" * 50 + b"QUIT\r\n")
        codes = []
        while (reply := client.reply()) is not None:
            codes.append(reply.code)
    assert codes[:3001] == [250] * 3001
    assert codes[3001:3003] == [250, 503]  # the nested MAIL commands are refused
    assert codes[-1] == 221
    assert still_serving(tolerant)


SMUGGLED = (b"MAIL FROM:<smuggler@example.org>\r\n" + f"RCPT TO:<{RCPT}>\r\n".encode()
            + b"DATA\r\nSubject: smuggled\r\n\r\nI should not be a message.\r\n")


@pytest.mark.parametrize("fake_end", [
    b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r", b"\r.\r\n", b"\n.", b"\r\n\x00.\r\n",
])
def test_bare_cr_or_lf_never_end_data(tolerant: IngestProcess, fake_end: bytes) -> None:
    with RawSMTP(tolerant.port) as client:
        client.greeting()
        session_until_data(client, RCPT)
        client.send(b"Subject: carrier\r\n\r\nbefore" + fake_end + SMUGGLED + b".\r\n")
        reply = client.reply()
        assert reply.code == 250, reply
        # Had the fake end worked, the smuggled commands would now be answered.
        assert client.command("NOOP").code == 250
    [body] = stored_bodies(tolerant)
    assert b"before" in body and b"I should not be a message." in body
    assert len(tolerant.messages()) == 1
