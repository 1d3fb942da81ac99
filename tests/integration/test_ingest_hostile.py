"""Hostile senders against a real ingest: no state shared between sessions, MAIL/RCPT lines
refused by length before any parsing, junk commands and session lifetime capped."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.conftest import RCPT, split_trace
from tests.support.net import wait_for
from tests.support.servers import IngestProcess
from tests.support.smtp import RawSMTP, Reply, session_until_data

LONG_LOCAL = ".".join(['"a"'] * 15_000)  # an obs-local-part: quadratic for email's parser
SIXTY_KB_MAIL = f"MAIL FROM:<{LONG_LOCAL}@b.onion>".encode()
MESSAGE = b"Subject: hostile\r\n\r\nhello\r\n.\r\n"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def pipelined(client: RawSMTP, line: bytes, count: int) -> list[Reply | None]:
    """Send `count` copies of a command at once, then read as many replies."""
    client.send((line + b"\r\n") * count)
    return [client.reply() for _ in range(count)]


def test_ehlos_in_one_session_do_not_raise_the_mail_limit_of_another(
        start_ingest: Callable[..., IngestProcess]) -> None:
    """aiosmtpd kept MAIL's line limit in one dict for every session, 36 octets more per
    EHLO: a session's EHLOs let the next session's over-long MAIL through to the parser."""
    ingest = start_ingest(tls="off", junk_command_limit=100)
    with RawSMTP(ingest.port) as first:
        first.greeting()
        assert {reply.code for reply in pipelined(first, b"EHLO one", 10)} == {250}
    address = f"<{'b' * 580}@example.org>"  # a 600-octet line: valid, but past 548
    with RawSMTP(ingest.port) as second:
        second.greeting()
        second.command(b"EHLO two")
        reply = second.command(f"MAIL FROM:{address}")
        assert reply is not None and (reply.code, reply.enhanced) == (501, "5.5.4"), reply


def test_unique_junk_lines_leave_no_memory_behind(
        start_ingest: Callable[..., IngestProcess]) -> None:
    """Every over-long command name stayed in aiosmtpd's class-level dict for good (~60 MB
    for these 1,000 lines). The junk limit is raised so that only the memory is tested."""
    ingest = start_ingest(tls="off", junk_command_limit=1000)
    assert ingest.process is not None
    before = rss_kib(ingest.process.pid)
    for session in range(5):
        with RawSMTP(ingest.port) as client:
            client.greeting()
            client.command(b"EHLO junk")
            for line in range(200):
                junk = f"X{session:02d}{line:04d}".encode() * 8_000  # ~56 KB, unique
                reply = client.command(junk)
                assert reply is not None and reply.code == 500, reply
    grown_mib = (rss_kib(ingest.process.pid) - before) / 1024
    assert grown_mib < 30, f"ingest grew by {grown_mib:.0f} MiB"


def test_sixty_kb_address_after_many_ehlos_is_refused_unparsed(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(tls="off", junk_command_limit=2000)
    with RawSMTP(ingest.port) as client:
        client.greeting()
        assert {reply.code for reply in pipelined(client, b"EHLO many", 1800)} == {250}
        reply = client.command(SIXTY_KB_MAIL)
        assert reply is not None and (reply.code, reply.enhanced) == (501, "5.5.4"), reply
        reply = client.command(f"RCPT TO:<{RCPT}>")
        assert reply is not None and reply.code == 503, reply  # no sender was taken
    assert ingest.messages() == []


def test_nested_sixty_kb_mail_is_refused_and_the_transaction_goes_on(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(tls="off", junk_command_limit=2000)
    with RawSMTP(ingest.port) as client:
        client.greeting()
        pipelined(client, b"EHLO many", 1800)
        assert client.command(b"MAIL FROM:<honest@example.org>").code == 250
        reply = client.command(SIXTY_KB_MAIL)
        assert reply is not None and (reply.code, reply.enhanced) == (501, "5.5.4"), reply
        long_rcpt = client.command(f"RCPT TO:<{'c' * 600}@{RCPT.split('@')[1]}>")
        assert long_rcpt is not None and (long_rcpt.code, long_rcpt.enhanced) == (501, "5.1.3")
        assert client.command(f"RCPT TO:<{RCPT}>").code == 250
        assert client.command(b"DATA").code == 354
        client.send(MESSAGE)
        assert client.reply().code == 250
    [stored] = ingest.messages()
    trace, _ = split_trace(stored.read_bytes())
    assert trace.startswith(b"Return-Path: <honest@example.org>\r\n")


def test_longest_accepted_sender_keeps_return_path_within_998_octets(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(tls="off")
    sender = f"{'s' * 64}@{'d' * 180}.example"  # 256 octets with the angle brackets
    with RawSMTP(ingest.port) as client:
        client.greeting()
        session_until_data(client, RCPT, sender=sender)
        client.send(MESSAGE)
        assert client.reply().code == 250
    [stored] = ingest.messages()
    trace, _ = split_trace(stored.read_bytes())
    assert all(len(line) <= 998 for line in trace.split(b"\r\n"))
    assert sender.encode() in trace


def test_sender_path_over_256_octets_is_refused(ingest: IngestProcess) -> None:
    """RFC 5321 4.5.3.1.3; the line (320 octets) is within its own limit."""
    with RawSMTP(ingest.port) as client:
        client.greeting()
        client.command(b"EHLO client")
        reply = client.command(f"MAIL FROM:<{'s' * 64}@{'d' * 230}.example>")
        assert reply is not None and (reply.code, reply.enhanced) == (501, "5.5.4"), reply
        assert client.command(b"MAIL FROM:<ok@example.org>").code == 250


def expect_closed_with(client: RawSMTP, code: int, enhanced: str) -> None:
    reply = client.reply()
    assert reply is not None and (reply.code, reply.enhanced) == (code, enhanced), reply
    assert client.closed()


def test_past_the_junk_limit_the_session_gets_421_and_is_closed(
        ingest: IngestProcess) -> None:
    with RawSMTP(ingest.port) as client:
        client.greeting()
        assert client.command(b"EHLO first").code == 250
        junk = [b"NOOP", b"RSET", b"EHLO again", b"HELO again", b"HELP", b"VRFY <a@b>",
                b"XYZZY", b"MAIL FROM:<" + b"x" * 600 + b">", b"RCPT TO:<a@b>", b"DATA",
                b"X" * 2000, b"", b"MAIL FROM:<a@@b>"]
        for number in range(20):
            reply = client.command(junk[number % len(junk)])
            assert reply is not None and reply.code != 421, (number, reply)
        client.send(b"NOOP\r\n")
        assert client.reply().code == 250  # the 21st is answered...
        expect_closed_with(client, 421, "4.7.0")  # ...and the session ends


def test_delivered_mail_resets_the_junk_count(
        start_ingest: Callable[..., IngestProcess]) -> None:
    """Many messages in one session, with an RSET before each (as some MTAs do): honest."""
    ingest = start_ingest(tls="off", circuit_messages_per_minute=100)
    with RawSMTP(ingest.port) as client:
        client.greeting()
        client.command(b"EHLO honest")
        for _ in range(25):
            for line, expected in ((b"RSET", 250), (b"NOOP", 250),
                                   (b"MAIL FROM:<a@example.org>", 250),
                                   (f"RCPT TO:<{RCPT}>".encode(), 250), (b"DATA", 354)):
                reply = client.command(line)
                assert reply is not None and reply.code == expected, (line, reply)
            client.send(MESSAGE)
            assert client.reply().code == 250
    assert len(ingest.messages()) == 25


def test_session_past_its_lifetime_gets_421_and_is_closed(
        start_ingest: Callable[..., IngestProcess]) -> None:
    """A NOOP now and then kept a slot for good: the lifetime ends the session."""
    ingest = start_ingest(tls="off", session_lifetime=2)
    with RawSMTP(ingest.port) as client:
        client.greeting()
        client.command(b"EHLO squatter")
        for _ in range(200):
            reply = client.command(b"NOOP")
            assert reply is not None
            if reply.code != 250:
                break
            time.sleep(0.5)
        assert reply is not None and (reply.code, reply.enhanced) == (421, "4.4.2"), reply
        assert client.closed()


def test_lifetime_does_not_cut_a_message_in_flight(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(tls="off", session_lifetime=2)
    with RawSMTP(ingest.port) as client:
        client.greeting()
        session_until_data(client, RCPT)
        client.send(b"Subject: slow\r\n\r\nfirst half\r\n")
        time.sleep(3)  # the lifetime ends while DATA is being received
        client.send(b"second half\r\n.\r\n")
        reply = client.reply()
        assert reply is not None and reply.code == 250, reply
        expect_closed_with(client, 421, "4.4.2")
    [stored] = ingest.messages()
    assert stored.read_bytes().endswith(b"first half\r\nsecond half\r\n")


def greeting(port: int) -> int | None:
    with RawSMTP(port) as client:
        reply = client.greeting()
        return reply.code if reply else None


def test_a_peer_that_reads_nothing_loses_its_slot(
        start_ingest: Callable[..., IngestProcess]) -> None:
    """Replies it never reads fill the socket buffers: closing waited for them to leave, for
    good, and the session kept its slot. It is dropped a grace period after closing."""
    ingest = start_ingest(tls="off", max_sessions=1, command_timeout=5,
                          junk_command_limit=1_000_000)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", ingest.port))
    sock.settimeout(5)
    with sock:
        with contextlib.suppress(OSError):  # sending stops once ingest stops reading
            for _ in range(200):
                sock.sendall(b"HELP\r\n" * 1000)
        assert greeting(ingest.port) == 421  # the one slot is taken
        wait_for(lambda: greeting(ingest.port) == 220, timeout=60,
                 what="the slot of a session that reads nothing to be free again")
