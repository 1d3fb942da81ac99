"""Ingest's inline limits: size, recipients, sessions in total, timeouts, long lines.
(Per-circuit limits: test_ingest_proxy.py; mailbox quota: test_ingest_quota.py.)"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable

import pytest
from tests.conftest import TEST_DOMAIN
from tests.integration.conftest import RCPT, stored_bodies
from tests.support.servers import IngestProcess
from tests.support.smtp import RawSMTP, session_until_data

SMALL = b"Subject: small\r\n\r\nok\r\n"


@pytest.fixture
def small_limits(start_ingest: Callable[..., IngestProcess]) -> IngestProcess:
    return start_ingest(max_message_size=2000, max_recipients=3)


def test_size_is_advertised_and_declared_oversize_refused_at_mail(
        small_limits: IngestProcess) -> None:
    with smtplib.SMTP("127.0.0.1", small_limits.port, timeout=15) as client:
        client.ehlo("client.example")
        assert client.esmtp_features["size"] == "2000"
        code, text = client.mail("a@example.org", ["SIZE=2001"])
        assert (code, text[:5]) == (552, b"5.3.4")
        assert client.mail("a@example.org", ["SIZE=1500"])[0] == 250


def test_actual_oversize_data_is_refused_and_the_session_goes_on(
        small_limits: IngestProcess) -> None:
    with RawSMTP(small_limits.port) as client:
        client.greeting()
        session_until_data(client, RCPT)
        client.send(b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 40 + b".\r\n")
        reply = client.reply()
        assert (reply.code, reply.enhanced) == (552, "5.3.4")
        # The same session can still deliver a message that fits.
        assert client.command(b"MAIL FROM:<a@example.org>").code == 250
        assert client.command(f"RCPT TO:<{RCPT}>").code == 250
        assert client.command(b"DATA").code == 354
        client.send(SMALL + b".\r\n")
        assert client.reply().code == 250
    assert stored_bodies(small_limits) == [SMALL]


def test_recipients_past_the_limit_get_452_4_5_3(small_limits: IngestProcess) -> None:
    with smtplib.SMTP("127.0.0.1", small_limits.port, timeout=15) as client:
        client.ehlo("client.example")
        client.mail("a@example.org")
        codes = [client.rcpt(f"r{index}@{TEST_DOMAIN}") for index in range(5)]
        assert [code for code, _ in codes] == [250, 250, 250, 452, 452]
        assert codes[3][1].startswith(b"4.5.3")
        assert client.data(SMALL)[0] == 250
    [path] = small_limits.messages()
    assert path.read_bytes().endswith(SMALL)


def test_sessions_in_total_past_the_limit_get_421_and_close(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(max_sessions=3, circuit_max_sessions=10)
    open_sessions = [RawSMTP(ingest.port) for _ in range(3)]
    assert [client.greeting().code for client in open_sessions] == [220] * 3
    with RawSMTP(ingest.port) as fourth:
        reply = fourth.reply()
        assert (reply.code, reply.enhanced) == (421, "4.7.0")
        assert fourth.closed()
    open_sessions.pop().close()
    # The freed session is counted back (the server notices the close asynchronously).
    for _ in range(100):
        with RawSMTP(ingest.port) as again:
            if again.greeting().code == 220:
                break
        time.sleep(0.1)
    else:
        pytest.fail("a closed session was never released")
    for client in open_sessions:
        client.close()


def test_idle_session_is_closed_after_the_command_timeout(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(command_timeout=2)
    with RawSMTP(ingest.port) as client:
        client.greeting()
        assert client.command("EHLO client.example").code == 250
        reply = client.reply()  # nothing sent: the server gives up on us
        assert (reply.code, reply.enhanced) == (421, "4.4.2")
        assert client.closed()


def test_data_timeout_bounds_the_whole_data_phase(
        start_ingest: Callable[..., IngestProcess]) -> None:
    """A sender trickling lines forever is cut off by the DATA timeout, even though it
    is never idle for as long as the command timeout."""
    ingest = start_ingest(command_timeout=30, data_timeout=2)
    with RawSMTP(ingest.port) as client:
        client.greeting()
        session_until_data(client, RCPT)
        client.sock.settimeout(0.2)
        for _ in range(300):  # up to ~60 s of trickling
            try:
                client.send(b"still here\r\n")
                if client.sock.recv(4096):
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        else:
            pytest.fail("the DATA phase was never cut off")
    assert ingest.messages() == []
    assert list((ingest.maildir / "tmp").iterdir()) == []


def test_command_timeout_applies_again_after_data(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(command_timeout=60, data_timeout=1)
    with RawSMTP(ingest.port) as client:
        client.greeting()
        session_until_data(client, RCPT)
        client.send(SMALL + b".\r\n")
        assert client.reply().code == 250
        time.sleep(2)  # longer than the DATA timeout, well within the command timeout
        assert client.command("NOOP").code == 250


def test_over_long_command_line_is_refused_and_session_goes_on(ingest: IngestProcess) -> None:
    with RawSMTP(ingest.port) as client:
        client.greeting()
        client.command("EHLO client.example")
        reply = client.command(b"MAIL FROM:<" + b"a" * 5000 + b"@example.org>")
        assert (reply.code, reply.enhanced) == (501, "5.5.4")  # RFC 5321 4.5.3.1.9
        reply = client.command(b"HELP " + b"h" * 5000)
        assert (reply.code, reply.enhanced) == (500, "5.5.2")
        reply = client.command(b"NOOP " + b"n" * 100_000)
        assert (reply.code, reply.enhanced) == (500, "5.5.2")
        assert client.command("NOOP").code == 250


def test_over_long_data_line_is_refused_nothing_stored(ingest: IngestProcess) -> None:
    with RawSMTP(ingest.port) as client:
        client.greeting()
        session_until_data(client, RCPT)
        client.send(b"Subject: long\r\n\r\n" + b"z" * 5000 + b"\r\n.\r\n")
        reply = client.reply()
        assert (reply.code, reply.enhanced) == (500, "5.5.2")
        assert client.command("NOOP").code == 250
    assert ingest.messages() == []
