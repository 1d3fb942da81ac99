"""An anonymous sender attacking ingest's defences for free: each test is an attack that
once worked (a slot held for good, a wrong answer) against a real `onionpost ingest`."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import pytest
from tests.support.net import wait_for
from tests.support.servers import IngestProcess
from tests.support.smtp import RawSMTP, circuit_address, proxy_v1

# The first bytes of a TLS ClientHello: a handshake begun and never finished.
PARTIAL_CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


def greeting_code(port: int, proxy_line: bytes | None = None) -> int | None:
    with RawSMTP(port, proxy_line) as client:
        reply = client.greeting()
        return reply.code if reply else None


@pytest.mark.parametrize("proxy", [False, True], ids=["direct", "proxy"])
def test_a_tls_handshake_that_never_finishes_gives_its_slot_back(
        start_ingest: Callable[..., IngestProcess], proxy: bool) -> None:
    """The command timeout ended a STARTTLS whose handshake stalled, but asyncio tells a
    protocol nothing of a connection lost mid-handshake: the session's slot (and its
    circuit's) stayed taken after the connection was gone, until a restart."""
    ingest = start_ingest(max_sessions=1, circuit_max_sessions=1, command_timeout=2,
                          proxy_protocol=str(proxy).lower())
    proxy_line = proxy_v1(circuit_address(0x51)) if proxy else None
    with RawSMTP(ingest.port, proxy_line) as client:
        client.greeting()
        client.command(b"EHLO stalling")
        reply = client.command(b"STARTTLS")
        assert reply is not None and reply.code == 220, reply
        client.send(PARTIAL_CLIENT_HELLO)
        assert client.closed(timeout=30)  # the command timeout ends it
    wait_for(lambda: greeting_code(ingest.port, proxy_line) == 220, timeout=30,
             what="the slot of a session whose TLS handshake stalled to be free again",
             interval=0.5)


@pytest.mark.parametrize("size", ["\u00b2", "\u0661\u0660"], ids=["superscript", "arabic"])
def test_a_size_in_other_digits_is_a_syntax_error_not_a_local_error(
        ingest: IngestProcess, size: str) -> None:
    """SIZE=² passed aiosmtpd's isdigit() and broke its int(): 451 "try again later", which
    a client would do for good. RFC 1870's size is ASCII digits: 501, and the session goes on."""
    with RawSMTP(ingest.port) as client:
        client.greeting()
        client.command(b"EHLO client")
        reply = client.command(f"MAIL FROM:<a@example.org> SIZE={size}".encode())
        assert reply is not None and (reply.code, reply.enhanced) == (501, "5.5.4"), reply
        reply = client.command(b"MAIL FROM:<a@example.org> SIZE=100")
        assert reply is not None and reply.code == 250, reply
    assert "session_error" not in ingest.logs()


@pytest.mark.parametrize(("lines", "code"), [
    ([b"MAIL FROM:a@"], 553),
    ([b"MAIL FROM:<a@example.org>", b"RCPT TO:a@"], 553),
    ([b"VRFY a@"], 502),
    ([b"VRFY (\xff"], 502),
], ids=["mail", "rcpt", "vrfy", "vrfy-undecodable"])
def test_addresses_that_broke_the_parser_or_the_reply_are_refused_for_good(
        ingest: IngestProcess, lines: list[bytes], code: int) -> None:
    """The email package's parser raises IndexError on "a@", and a VRFY reply echoing an
    undecodable byte could not be encoded: both were answered 451 (try again later, so
    a client would, for good). A permanent refusal, and the session goes on."""
    with RawSMTP(ingest.port) as client:
        client.greeting()
        client.command(b"EHLO client")
        for line in lines:
            reply = client.command(line)
        assert reply is not None and reply.code == code, reply
        assert client.command(b"NOOP").code == 250
    assert "session_error" not in ingest.logs()



@pytest.mark.parametrize("maximum", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["tls1.2", "tls1.3"])
def test_no_tls_session_ticket_is_given(ingest: IngestProcess, maximum: ssl.TLSVersion) -> None:
    """A ticket lets a sender's client tie two of its circuits together for us, and its
    flight crosses Tor for nothing. Tickets were off for TLS 1.3 only: a TLS 1.2 client
    (the default minimum) still got one."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.maximum_version = maximum
    with RawSMTP(ingest.port) as client:
        client.greeting()
        client.command(b"EHLO client")
        assert client.command(b"STARTTLS").code == 220
        client.sock = context.wrap_socket(client.sock)
        assert client.command(b"EHLO client").code == 250
        assert client.command(b"NOOP").code == 250  # 1.3's come late
        session = client.sock.session
        assert session is not None and not session.has_ticket


def test_junk_before_and_inside_tls_counts_as_one_session(ingest: IngestProcess) -> None:
    """STARTTLS hands the connection to a TLS layer and starts a new SMTP session: the
    junk count and the guarded reader must survive it, pipelined junk included."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with RawSMTP(ingest.port) as client:
        client.greeting()
        client.command(b"EHLO client")
        for _ in range(15):
            assert client.command(b"NOOP").code == 250
        assert client.command(b"STARTTLS").code == 220
        client.sock = context.wrap_socket(client.sock)
        assert client.command(b"EHLO client").code == 250
        client.send(b"NOOP\r\n" * 30)
        codes = [reply.code if reply else None for reply in (client.reply() for _ in range(7))]
        assert codes == [250] * 6 + [421], codes  # the 21st junk command is the last
        assert client.closed()
