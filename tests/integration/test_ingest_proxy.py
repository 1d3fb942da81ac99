"""Tor's PROXY v1 header: parsed (checked independently with swaks), required when enabled,
and the address in it is the circuit that per-circuit limits count."""

from __future__ import annotations

import smtplib
from collections.abc import Callable

import pytest
from tests.integration.conftest import RCPT, stored_bodies
from tests.support.servers import IngestProcess
from tests.support.smtp import ProxySMTP, RawSMTP, circuit_address, proxy_v1, swaks

MESSAGE = b"Subject: circuit\r\n\r\nhello\r\n"
CIRCUIT_A, CIRCUIT_B = circuit_address(0x18), circuit_address(0x2A0031)


@pytest.fixture
def proxied(start_ingest: Callable[..., IngestProcess]) -> IngestProcess:
    return start_ingest(proxy_protocol="true", proxy_timeout=3)


def test_swaks_proxy_v1_tcp6_header_is_understood(proxied: IngestProcess) -> None:
    result = swaks(proxied.port, RCPT, "--proxy-version", "1", "--proxy-family", "TCP6",
                   "--proxy-source", "fc00:dead:beef:4dad::0:18", "--proxy-dest", "::1",
                   "--proxy-source-port", "24", "--proxy-dest-port", "25",
                   "--body", "through the circuit")
    assert result.returncode == 0, result.stdout
    assert "PROXY TCP6 FC00:DEAD:BEEF:4DAD::0:18 ::1 24 25" in result.stdout.upper()
    [body] = stored_bodies(proxied)
    assert b"through the circuit" in body


def swaks_from(ingest: IngestProcess, source: str) -> str:
    result = swaks(ingest.port, RCPT, "--proxy-version", "1", "--proxy-family", "TCP6",
                   "--proxy-source", source, "--proxy-dest", "::1",
                   "--proxy-source-port", "24", "--proxy-dest-port", "25")
    return result.stdout


def test_swaks_circuits_are_told_apart_by_the_proxy_source(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(proxy_protocol="true", circuit_messages_per_minute=1)
    assert "<-  250 2.0.0 OK queued" in swaks_from(ingest, "fc00:dead:beef:4dad::0:18")
    assert "<** 450 4.7.0" in swaks_from(ingest, "fc00:dead:beef:4dad::0:18")
    assert "<-  250 2.0.0 OK queued" in swaks_from(ingest, "fc00:dead:beef:4dad::1:18")
    assert len(ingest.messages()) == 2


def test_swaks_without_proxy_header_gets_no_service(proxied: IngestProcess) -> None:
    result = swaks(proxied.port, RCPT, "--timeout", "10")
    assert result.returncode != 0
    assert proxied.messages() == []


@pytest.mark.parametrize("first_bytes", [
    b"EHLO client.example\r\n",
    b"PROXY TCP6 not-an-address ::1 24 25\r\n",
    b"PROXY TCP4 fc00:dead:beef:4dad::0:18 ::1 24 25\r\n",
    b"PROXY TCP6 fc00:dead:beef:4dad::0:18 ::1 99999 25\r\n",
    b"PROXY TCP6 fc00:dead:beef:4dad::0:18 ::1 24 25 extra\r\n",
    b"PROXY " + b"A" * 200 + b"\r\n",
    b"\x00" * 64 + b"\r\n",
])
def test_connection_without_a_valid_header_is_closed_unserved(
        proxied: IngestProcess, first_bytes: bytes) -> None:
    with RawSMTP(proxied.port, proxy_line=first_bytes) as client:
        reply = client.reply()
        assert reply is None or reply.code == 421, reply
        assert client.closed()


def test_silent_connection_is_closed_after_the_proxy_timeout(proxied: IngestProcess) -> None:
    with RawSMTP(proxied.port) as client:
        assert client.closed(timeout=20)


def test_valid_header_then_normal_session(proxied: IngestProcess) -> None:
    with ProxySMTP("127.0.0.1", proxied.port, CIRCUIT_A) as client:
        assert client.ehlo("client.example")[0] == 250
        assert client.sendmail("a@example.org", [RCPT], MESSAGE) == {}
    assert stored_bodies(proxied) == [MESSAGE]


def test_circuit_concurrent_sessions_are_limited_per_circuit(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(proxy_protocol="true", circuit_max_sessions=2)
    busy = [RawSMTP(ingest.port, proxy_line=proxy_v1(CIRCUIT_A)) for _ in range(2)]
    try:
        assert [client.greeting().code for client in busy] == [220, 220]
        with RawSMTP(ingest.port, proxy_line=proxy_v1(CIRCUIT_A)) as third:
            refused = third.reply()
            assert (refused.code, refused.enhanced) == (421, "4.7.0")
            assert third.closed()
        # Another circuit is not affected.
        with ProxySMTP("127.0.0.1", ingest.port, CIRCUIT_B) as other:
            assert other.sendmail("a@example.org", [RCPT], MESSAGE) == {}
    finally:
        busy[0].close()
    # A freed slot is usable again.
    with ProxySMTP("127.0.0.1", ingest.port, CIRCUIT_A) as again:
        assert again.noop()[0] == 250
    busy[1].close()


def test_circuit_messages_per_minute(start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(proxy_protocol="true", circuit_messages_per_minute=3)
    with ProxySMTP("127.0.0.1", ingest.port, CIRCUIT_A) as client:
        for _ in range(3):
            assert client.sendmail("a@example.org", [RCPT], MESSAGE) == {}
        code, text = client.mail("a@example.org")
        assert (code, text[:5]) == (450, b"4.7.0")
    # The throttled circuit is refused in a new session too; another circuit is accepted.
    with ProxySMTP("127.0.0.1", ingest.port, CIRCUIT_A) as client:
        client.ehlo("client.example")
        assert client.mail("a@example.org")[0] == 450
    with ProxySMTP("127.0.0.1", ingest.port, CIRCUIT_B) as client:
        assert client.sendmail("a@example.org", [RCPT], MESSAGE) == {}
    assert len(ingest.messages()) == 4


def test_without_proxy_the_peer_address_is_the_circuit(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(circuit_max_sessions=1)
    with RawSMTP(ingest.port) as first:
        assert first.greeting().code == 220
        with RawSMTP(ingest.port) as second:
            refused = second.reply()
            assert (refused.code, refused.enhanced) == (421, "4.7.0")
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        assert client.noop()[0] == 250


def test_sessions_in_total_count_every_circuit(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(proxy_protocol="true", max_sessions=2, circuit_max_sessions=5)
    first = RawSMTP(ingest.port, proxy_line=proxy_v1(circuit_address(1)))
    second = RawSMTP(ingest.port, proxy_line=proxy_v1(circuit_address(2)))
    try:
        assert [first.greeting().code, second.greeting().code] == [220, 220]
        with RawSMTP(ingest.port, proxy_line=proxy_v1(circuit_address(3))) as third:
            refused = third.reply()
            assert (refused.code, refused.enhanced) == (421, "4.7.0")
            assert third.closed()
    finally:
        first.close()
        second.close()
