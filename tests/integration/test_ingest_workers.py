"""ONIONPOST_INGEST_WORKERS=2: both processes serve the one port, and the limits they enforce
are one set (shared ledger), not one per process; every stored message becomes an event."""

from __future__ import annotations

import os
import smtplib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.integration.conftest import RCPT
from tests.support.events import queued_events
from tests.support.net import port_open, wait_for
from tests.support.servers import IngestProcess

MESSAGE = b"Subject: workers\r\n\r\n" + (b"0123456789" * 10 + b"\r\n") * 10
OPEN_LIMITS = {"circuit_max_sessions": 200, "circuit_messages_per_minute": 10_000}


def children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def server_side_inodes(port: int) -> dict[int, int]:
    """Established connections to 127.0.0.1:port: client port -> server socket inode."""
    inodes = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
        if state == "01" and int(local.split(":")[1], 16) == port:
            inodes[int(remote.split(":")[1], 16)] = inode
    return inodes


def owner_of(inode: int, pids: set[int]) -> int | None:
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


@contextmanager
def open_sessions(port: int, count: int) -> Iterator[list[smtplib.SMTP]]:
    with ExitStack() as stack:
        clients = []
        for _ in range(count):
            client = stack.enter_context(smtplib.SMTP("127.0.0.1", port, timeout=30))
            client.ehlo("client.example")
            clients.append(client)
        yield clients


def start_workers(start_ingest: Callable[..., IngestProcess], **settings: object) -> IngestProcess:
    """Two workers, both listening (the fixture waits for the first only)."""
    ingest = start_ingest(ingest_workers=2, **OPEN_LIMITS, **settings)
    wait_for(lambda: ingest.logs().count("event=listening") == 2, what="both workers")
    return ingest


@contextmanager
def sessions_on_both_workers(ingest: IngestProcess, count: int,
                             tries: int = 20) -> Iterator[list[smtplib.SMTP]]:
    """`count` open sessions held by both workers. Which worker accepts a connection on
    the shared socket is up to the scheduler (one awake worker may take a short burst
    alone), so open the set again until it is spread."""
    for _ in range(tries):
        with open_sessions(ingest.port, count) as clients:
            owners = serving_workers(ingest, clients)
            if len(owners) == 2 and None not in owners:
                yield clients
                return
    raise AssertionError(f"{count} sessions never reached both workers in {tries} tries")


def serving_workers(ingest: IngestProcess, clients: list[smtplib.SMTP]) -> Counter[int | None]:
    """Which worker process holds each client's connection."""
    assert ingest.process is not None
    workers = children(ingest.process.pid)
    inodes = server_side_inodes(ingest.port)
    return Counter(owner_of(inodes[client.sock.getsockname()[1]], workers)
                   for client in clients)


def send(client: smtplib.SMTP, count: int) -> list[int]:
    """`count` messages one after another over this session: the first refusal (452 4.2.2
    expected) or the DATA reply of each."""
    codes = []
    for _ in range(count):
        for code, text in (client.mail("a@example.org"), client.rcpt(RCPT)):
            if code != 250:
                assert (code, text[:5]) == (452, b"4.2.2"), text
                client.rset()
                break
        else:
            code, text = client.data(MESSAGE)
            assert code == 250 or text.startswith(b"4.2.2"), text
        codes.append(code)
    return codes


def test_both_workers_serve_and_share_one_message_quota(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_workers(start_ingest, max_messages=25, max_sessions=100)
    assert ingest.process is not None
    with sessions_on_both_workers(ingest, 20) as clients:
        assert set(serving_workers(ingest, clients)) == children(ingest.process.pid)
        with ThreadPoolExecutor(len(clients)) as pool:
            codes = Counter(code for codes in pool.map(send, clients, [3] * len(clients))
                            for code in codes)  # 60 attempts, 3 per session
    assert codes == Counter({250: 25, 452: 35})
    assert len(ingest.messages()) == 25


def test_the_session_limit_counts_both_workers(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_workers(start_ingest, max_sessions=6)
    with sessions_on_both_workers(ingest, 6):
        with smtplib.SMTP() as extra:
            code, text = extra.connect("127.0.0.1", ingest.port)
        assert (code, text[:5]) == (421, b"4.7.0")
    with open_sessions(ingest.port, 6):  # the slots came back when the sessions closed
        pass


def test_events_of_both_workers_reach_rq(
        start_ingest: Callable[..., IngestProcess], redis_url: str) -> None:
    ingest = start_workers(start_ingest, max_messages=1000)
    with sessions_on_both_workers(ingest, 10) as clients:
        with ThreadPoolExecutor(len(clients)) as pool:
            replies = list(pool.map(send, clients, [5] * len(clients)))
        assert replies == [[250] * 5] * len(clients)
    events = wait_for(lambda: len(queued_events(redis_url)) == 50 and queued_events(redis_url),
                      timeout=10, what="50 events")
    stored = {path.name: path.stat().st_size for path in ingest.messages()}
    assert {event["file"]: event["size"] for event in events} == stored
    assert ingest.stop() == 0


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_end_with_their_parent_even_after_kill_9(
        start_ingest: Callable[..., IngestProcess]) -> None:
    """Orphaned workers would keep the port: the next ingest could not bind it."""
    ingest = start_workers(start_ingest)
    assert ingest.process is not None
    workers = children(ingest.process.pid)
    assert len(workers) == 2
    ingest.kill()
    wait_for(lambda: not any(map(running, workers)), what="the workers to exit")
    successor = IngestProcess(ingest.maildir, ingest.domain, ingest.env, port=ingest.port)
    try:
        successor.start(wait=False)  # its log file is the first one's: wait for the port
        wait_for(lambda: port_open(ingest.port) or successor.process.poll() is not None,
                 what="the successor to listen")
        assert successor.process.poll() is None, successor.logs()[-2000:]
        with smtplib.SMTP("127.0.0.1", successor.port, timeout=30) as client:
            assert client.noop()[0] == 250
    finally:
        successor.stop()
