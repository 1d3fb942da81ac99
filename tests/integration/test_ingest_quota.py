"""Ingest's inline mailbox quota: 452 4.2.2 past a limit, no race, no Redis needed, rescans."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.integration.conftest import RCPT
from tests.support.net import free_port, wait_for
from tests.support.servers import IngestProcess
from tests.support.smtp import RawSMTP, session_until_data

MESSAGE = b"Subject: quota\r\n\r\n" + b"0123456789" * 50 + b"\r\n"
OPEN_LIMITS = {"max_sessions": 200, "circuit_max_sessions": 200,
               "circuit_messages_per_minute": 10_000}


def send_one(port: int, body: bytes = MESSAGE) -> tuple[int, bytes]:
    """One whole session; the first refusal (or the DATA reply) as (code, text)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example")
        for code, text in (client.mail("a@example.org"), client.rcpt(RCPT)):
            if code != 250:
                return code, text
        return client.data(body)


def send_concurrently(port: int, count: int) -> list[tuple[int, bytes]]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: send_one(port), range(count)))


@pytest.mark.parametrize("workers", [1, 2])
def test_many_concurrent_sessions_never_store_past_max_messages(
        start_ingest: Callable[..., IngestProcess], workers: int) -> None:
    ingest = start_ingest(max_messages=10, ingest_workers=workers, **OPEN_LIMITS)
    replies = send_concurrently(ingest.port, 40)
    accepted = [reply for reply in replies if reply[0] == 250]
    refused = [reply for reply in replies if reply[0] != 250]
    assert len(accepted) == 10
    assert len(ingest.messages()) == 10
    assert {(code, text[:5]) for code, text in refused} == {(452, b"4.2.2")}


def test_many_concurrent_sessions_never_store_past_max_bytes(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(max_bytes=5000, **OPEN_LIMITS)
    replies = send_concurrently(ingest.port, 30)
    stored = sum(path.stat().st_size for path in ingest.messages())
    assert stored <= 5000
    assert len(ingest.messages()) == sum(1 for code, _ in replies if code == 250) > 0
    assert stored + len(MESSAGE) + 200 > 5000  # it filled up, and only then refused
    assert {code for code, _ in replies} == {250, 452}


def test_quota_holds_with_redis_unreachable(start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(max_messages=3, redis_url=f"redis://127.0.0.1:{free_port()}/0",
                          **OPEN_LIMITS)
    replies = [send_one(ingest.port) for _ in range(5)]
    assert [code for code, _ in replies] == [250, 250, 250, 452, 452]
    assert replies[3][1].startswith(b"4.2.2")
    assert len(ingest.messages()) == 3


def test_quota_counts_existing_mail_at_start_new_and_cur(
        start_ingest: Callable[..., IngestProcess]) -> None:
    first = start_ingest(max_messages=3, **OPEN_LIMITS)
    assert [send_one(first.port)[0] for _ in range(2)] == [250, 250]
    first.stop()
    # The owner's reader marks one as seen: still in the mailbox, still counted.
    seen = first.messages()[0]
    seen.rename(first.maildir / "cur" / (seen.name + ":2,S"))
    second = start_ingest(maildir=first.maildir, max_messages=3, **OPEN_LIMITS)
    assert [send_one(second.port)[0] for _ in range(2)] == [250, 452]


def test_ingest_accepts_again_after_mail_is_fetched_away(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(max_messages=2, quota_rescan_interval=0.3, **OPEN_LIMITS)
    assert [send_one(ingest.port)[0] for _ in range(3)] == [250, 250, 452]
    for path in ingest.messages():
        path.unlink()  # what `onionpost fetch` does on the server side
    wait_for(lambda: send_one(ingest.port)[0] == 250, timeout=20,
             what="ingest to rescan and accept again")
    assert len(ingest.messages()) == 1


def test_clients_hanging_up_mid_delivery_leak_no_quota(
        start_ingest: Callable[..., IngestProcess]) -> None:
    """A client (or a dying circuit) may close right after the final dot: the message is
    then stored whole or not at all, and its quota reservation is not lost."""
    ingest = start_ingest(max_messages=4, quota_rescan_interval=0.3, **OPEN_LIMITS)
    for _ in range(4):
        with RawSMTP(ingest.port) as client:
            client.greeting()
            session_until_data(client, RCPT)
            client.send(MESSAGE + b".\r\n")
            client.sock.shutdown(socket.SHUT_RDWR)
    wait_for(lambda: not list((ingest.maildir / "tmp").iterdir()), timeout=10,
             what="tmp/ to be empty")
    for path in ingest.messages():
        assert path.read_bytes().endswith(MESSAGE)
        path.unlink()
    # Everything fetched away: after rescans the full quota is free again (a leaked
    # reservation would keep the mailbox below 4 for ever).
    wait_for(lambda: fill_up(ingest) == 4, timeout=20, what="a full quota of 4 again")


def fill_up(ingest: IngestProcess) -> int:
    """Send until refused; the number of messages then stored."""
    while send_one(ingest.port)[0] == 250:
        pass
    return len(ingest.messages())
