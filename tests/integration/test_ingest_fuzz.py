"""Hypothesis drives whole SMTP sessions (commands, bytes, DATA, PROXY headers) against one
running ingest: it must answer every time, stay up, and log no unhandled exception (the
log check is the autouse fixture in conftest.py)."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import TEST_DOMAIN
from tests.integration.conftest import RCPT
from tests.support.servers import IngestProcess
from tests.support.smtp import ProxySMTP, proxy_v1

FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
LIMITS = {"circuit_max_sessions": 100, "circuit_messages_per_minute": 100_000,
          "max_message_size": 20_000, "max_recipients": 5, "command_timeout": 5,
          "data_timeout": 5, "proxy_timeout": 3, "max_messages": 100_000}

addresses = st.sampled_from([RCPT, f"X@{TEST_DOMAIN.upper()}", "a@example.org", "", "<>",
                             "../../x@" + TEST_DOMAIN, "a\x00b@" + TEST_DOMAIN, "@@", "<<a>>"])
commands = st.one_of(
    st.sampled_from(["EHLO client.example", "HELO x", "EHLO", "RSET", "NOOP", "QUIT", "DATA",
                     "HELP", "HELP MAIL", "VRFY root", "EXPN all", "STARTTLS", "AUTH PLAIN",
                     "AUTH LOGIN", "BDAT 10 LAST", "MAIL FROM:<a@example.org> SIZE=99999999",
                     "MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8", "TURN", "ETRN x",
                     "MAIL FROM:<a@example.org> SIZE=abc", "RCPT TO:<x> NOTIFY=NEVER"]),
    addresses.map(lambda address: f"MAIL FROM:<{address}>"),
    addresses.map(lambda address: f"RCPT TO:<{address}>"),
    st.text(max_size=60),
).map(lambda line: line.encode("utf-8", "surrogateescape") + b"\r\n")
data_block = st.lists(st.one_of(
    st.binary(max_size=200), st.sampled_from([b".\r\n", b"\r\n.\r\n", b"\n.\n", b"\r.\r", b"..",
                                              b"\r\n" * 5, b"x" * 2000 + b"\r\n"])),
    max_size=8).map(b"".join)
transaction = st.builds(
    lambda rcpts, data: (b"EHLO fuzz.example\r\nMAIL FROM:<a@example.org>\r\n"
                         + b"".join(f"RCPT TO:<{rcpt}>\r\n".encode() for rcpt in rcpts)
                         + b"DATA\r\n" + data + b"\r\n.\r\n"),
    st.lists(st.sampled_from([RCPT, f"other@{TEST_DOMAIN}", "x@evil.example"]),
             min_size=1, max_size=7),
    data_block)
chunks = st.lists(st.one_of(commands, commands, commands, data_block, transaction,
                            st.binary(min_size=1, max_size=300)), min_size=1, max_size=15)


def play(port: int, prefix: bytes, parts: list[bytes]) -> bytes:
    """Send everything (in separate writes), half-close, and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            if prefix:
                sock.sendall(prefix)
            for part in parts:
                sock.sendall(part)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server hung up first (QUIT, too many errors, TLS): fine
            return b""
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received


def healthy(ingest: IngestProcess) -> bool:
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=20) as client:
        return client.sendmail("a@example.org", [RCPT], b"Subject: alive\r\n\r\nyes\r\n") == {}


@pytest.fixture
def fuzzed(start_ingest: Callable[..., IngestProcess]) -> IngestProcess:
    return start_ingest(**LIMITS)


@pytest.fixture
def fuzzed_proxy(start_ingest: Callable[..., IngestProcess]) -> IngestProcess:
    return start_ingest(proxy_protocol="true", **LIMITS)


def check_replies(received: bytes) -> None:
    for line in received.split(b"\r\n"):
        if line:
            assert line[:1] in b"2345" and line[:3].isdigit(), line
            if line[:1] in b"45":
                assert line[4:5] == line[:1], f"enhanced code of another class: {line!r}"


def test_fuzzed_sessions_never_break_ingest(fuzzed: IngestProcess) -> None:
    @FUZZ
    @given(parts=chunks)
    def session(parts: list[bytes]) -> None:
        check_replies(play(fuzzed.port, b"", parts))

    session()
    assert fuzzed.process is not None and fuzzed.process.poll() is None
    assert healthy(fuzzed)


proxy_prefixes = st.one_of(
    st.integers(0, 2**32 - 1).map(
        lambda n: proxy_v1(f"fc00:dead:beef:4dad::{n >> 16:x}:{n & 0xFFFF:x}")),
    st.binary(max_size=120),
    st.builds(lambda body: b"PROXY " + body + b"\r\n", st.binary(max_size=100)),
)


def test_fuzzed_proxy_headers_never_break_ingest(fuzzed_proxy: IngestProcess) -> None:
    @settings(FUZZ, max_examples=150)
    @given(prefix=proxy_prefixes, parts=chunks)
    def session(prefix: bytes, parts: list[bytes]) -> None:
        check_replies(play(fuzzed_proxy.port, prefix, parts))

    session()
    assert fuzzed_proxy.process is not None and fuzzed_proxy.process.poll() is None
    with ProxySMTP("127.0.0.1", fuzzed_proxy.port, "fc00:dead:beef:4dad::1:1") as client:
        assert client.sendmail("a@example.org", [RCPT], b"Subject: alive\r\n\r\nyes\r\n") == {}
