"""Ingest with pipelining clients (RFC 2920): swaks --pipeline, replies in order and in one
write, STARTTLS ends a group and drops what followed it, held replies survive a close, and a
client that pipelines without reading holds no more than a bounded buffer."""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import TEST_DOMAIN
from tests.integration.conftest import RCPT, stored_bodies
from tests.support.servers import IngestProcess
from tests.support.smtp import RawSMTP, swaks

MESSAGE = b"Subject: piped\r\n\r\nin one go\r\n"
OTHER = f"second@{TEST_DOMAIN}"
REPLY_END = re.compile(rb"^\d{3} ", re.MULTILINE)


@pytest.fixture
def tolerant(start_ingest: Callable[..., IngestProcess]) -> IngestProcess:
    """Limits out of the way, so that only the input under test decides the answers."""
    return start_ingest(circuit_max_sessions=50, circuit_messages_per_minute=10_000)


def read_replies(sock: socket.socket, count: int) -> tuple[list[bytes], int]:
    """The next `count` final reply lines, and how many reads brought them."""
    data, reads = b"", 0
    while len(REPLY_END.findall(data)) < count:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data, reads = data + chunk, reads + 1
    return [line[:3] for line in REPLY_END.findall(data)], reads


def ehlo(client: RawSMTP) -> list[str]:
    reply = client.command("EHLO client.example")
    assert reply is not None and reply.code == 250
    return reply.text.split("\n")


def test_swaks_pipelines_and_the_message_is_stored(ingest: IngestProcess) -> None:
    result = swaks(ingest.port, f"{RCPT},x@evil.example,{OTHER}", "--pipeline",
                   "--header", "Subject: pipelined swaks")
    transcript = result.stdout
    assert "<-  250-PIPELINING" in transcript
    # swaks wrote MAIL, every RCPT and DATA before reading a reply: it did pipeline.
    group = transcript.index(" -> MAIL FROM"), transcript.index(" -> DATA")
    assert "<-" not in transcript[group[0]:group[1]] and "<**" not in transcript[
        group[0]:group[1]]
    assert "<** 550 5.7.1 Relaying denied" in transcript
    [body] = stored_bodies(ingest)
    assert b"Subject: pipelined swaks" in body
    assert "rcpts=2" in ingest.logs()


def test_a_group_with_a_refused_recipient_is_answered_in_order_in_one_write(
        tolerant: IngestProcess) -> None:
    with RawSMTP(tolerant.port) as client:
        client.greeting()
        assert "PIPELINING" in ehlo(client)
        client.send(b"MAIL FROM:<a@example.org>\r\n"
                    + f"RCPT TO:<{RCPT}>\r\nRCPT TO:<x@evil.example>\r\n".encode()
                    + f"RCPT TO:<{OTHER}>\r\nDATA\r\n".encode())
        codes, reads = read_replies(client.sock, 5)
        assert codes == [b"250", b"250", b"550", b"250", b"354"]
        assert reads == 1  # the group's five replies left in one write
        client.send(MESSAGE + b".\r\nQUIT\r\n")
        codes, _ = read_replies(client.sock, 2)
        assert codes == [b"250", b"221"]
    assert stored_bodies(tolerant) == [MESSAGE]
    assert "rcpts=2" in tolerant.logs()  # the refused recipient got nothing


def test_the_ehlo_reply_is_one_write(ingest: IngestProcess) -> None:
    with RawSMTP(ingest.port) as client:
        client.greeting()
        client.send(b"EHLO client.example\r\n")
        data = client.sock.recv(65536)
    assert data.startswith(b"250-") and data.endswith(b"250 HELP\r\n"), data


def test_starttls_ends_the_group_and_drops_what_followed_it(ingest: IngestProcess) -> None:
    """The replies before STARTTLS arrive with its 220, in order; the pipelined MAIL and
    RCPT after it were plain text and count for nothing inside TLS (CVE-2024-34083)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with RawSMTP(ingest.port) as client:
        client.greeting()
        client.send(b"EHLO client.example\r\nNOOP\r\nSTARTTLS\r\n"
                    + f"MAIL FROM:<injected@example.org>\r\nRCPT TO:<{RCPT}>\r\n".encode())
        codes, _ = read_replies(client.sock, 3)
        assert codes == [b"250", b"250", b"220"]
        with context.wrap_socket(client.sock, server_hostname=TEST_DOMAIN) as tls:
            tls.sendall(b"EHLO client.example\r\nDATA\r\n")
            codes, _ = read_replies(tls, 2)
    assert codes == [b"250", b"503"]  # EHLO's, then no MAIL: the injected one was dropped
    assert ingest.messages() == []


def test_a_stored_message_is_answered_even_when_junk_after_it_closes_the_session(
        tolerant: IngestProcess) -> None:
    """The 250 is held while the junk is read; the session then closes for too many
    unknown commands: the held replies go out before the close, so no duplicate follows."""
    with RawSMTP(tolerant.port) as client:
        client.greeting()
        ehlo(client)
        client.send(f"MAIL FROM:<a@example.org>\r\nRCPT TO:<{RCPT}>\r\nDATA\r\n".encode())
        read_replies(client.sock, 3)
        client.send(MESSAGE + b".\r\n" + b"XYZZY\r\n" * 20)
        codes = []
        while (reply := client.reply()) is not None:
            codes.append(reply.code)
    assert codes[0] == 250 and codes[-1] == 502 and set(codes[1:-1]) == {500}, codes
    assert stored_bodies(tolerant) == [MESSAGE]


def test_quit_with_junk_after_it_still_answers_the_message(tolerant: IngestProcess) -> None:
    with RawSMTP(tolerant.port) as client:
        client.greeting()
        ehlo(client)
        client.send(f"MAIL FROM:<a@example.org>\r\nRCPT TO:<{RCPT}>\r\nDATA\r\n".encode())
        read_replies(client.sock, 3)
        client.send(MESSAGE + b".\r\nQUIT\r\nNOOP\r\nNOOP\r\n")
        codes = []
        while (reply := client.reply()) is not None:
            codes.append(reply.code)
    assert codes == [250, 221]
    assert stored_bodies(tolerant) == [MESSAGE]


def resident_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


def test_a_client_that_pipelines_and_never_reads_is_held_to_a_bounded_buffer(
        tolerant: IngestProcess) -> None:
    """64 MB of NOOPs, no reply read: ingest stops reading once its replies back up (they
    are written, not held without end), so its memory stays flat and others are served."""
    assert tolerant.process is not None
    before = resident_kib(tolerant.process.pid)
    sent = 0
    with RawSMTP(tolerant.port, timeout=5) as client:
        client.greeting()
        chunk = b"NOOP\r\n" * 10_000
        try:
            while sent < 64 * 1024 * 1024:
                client.sock.sendall(chunk)
                sent += len(chunk)
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            pass  # the server stopped reading (backpressure), or dropped us for not reading
        grown = resident_kib(tolerant.process.pid) - before
    assert sent < 64 * 1024 * 1024, "the server read everything without us reading a reply"
    assert grown < 32 * 1024, f"ingest grew by {grown} KiB"
    with smtplib.SMTP("127.0.0.1", tolerant.port, timeout=15) as other:
        assert other.sendmail("a@example.org", [RCPT], MESSAGE) == {}
