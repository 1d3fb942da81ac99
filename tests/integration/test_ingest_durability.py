"""Durable delivery: SIGTERM finishes what is in flight, kill -9 never loses an acknowledged
message nor leaves a partial one, a full disk answers 452 4.3.1 and recovers."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.integration.conftest import RCPT, split_trace
from tests.support.net import wait_for
from tests.support.servers import IngestProcess

OPEN_LIMITS = {"max_sessions": 200, "circuit_max_sessions": 200,
               "circuit_messages_per_minute": 100_000, "max_messages": 100_000}


def body(sender: int, number: int, lines: int) -> bytes:
    tag = f"{sender}-{number}"
    return (f"Subject: load {tag}\r\nMessage-ID: <{tag}@load>\r\n\r\n".encode()
            + f"{tag} 0123456789abcdefghijklmnopqrstuvwxyz\r\n".encode() * lines)


@dataclass
class Load:
    """Senders delivering unique messages over and over until stopped or refused."""

    port: int
    senders: int
    lines: int
    accepted: dict[bytes, str] = field(default_factory=dict)  # body -> queue id
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        self.threads = [threading.Thread(target=self._send, args=(n,), daemon=True)
                        for n in range(self.senders)]
        for thread in self.threads:
            thread.start()
        return self

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def _send(self, sender: int) -> None:
        number = 0
        while not self.stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
                    client.ehlo("load.example")
                    while not self.stop.is_set():
                        number += 1
                        message = body(sender, number, self.lines)
                        client.mail("load@example.org")
                        client.rcpt(RCPT)
                        code, reply = client.data(message)
                        if code == 250:
                            self.accepted[message] = reply.decode().rsplit(" ", 1)[1]
            except (OSError, smtplib.SMTPException):
                if not self.stop.wait(0.05):
                    continue


def stored_by_body(ingest: IngestProcess) -> dict[bytes, Path]:
    return {split_trace(path.read_bytes())[1]: path for path in ingest.messages()}


def assert_whole_and_acknowledged(ingest: IngestProcess, load: Load) -> None:
    assert load.accepted, "the load never got a message through"
    stored = stored_by_body(ingest)
    # Every file in new/ is exactly one message we sent, byte for byte (no partial file).
    for message, path in stored.items():
        assert message.startswith(b"Subject: load "), path.name
        sender, number = message.split(b"\r\n", 1)[0][14:].decode().split("-")
        assert message == body(int(sender), int(number), load.lines), path.name
    # Every acknowledged message is there, under the id it was acknowledged with.
    for message, queue_id in load.accepted.items():
        assert message in stored, f"acknowledged {queue_id} is missing"
        assert queue_id in stored[message].name


def test_sigterm_finishes_writes_in_flight_and_exits_0(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(**OPEN_LIMITS)
    load = Load(ingest.port, senders=8, lines=5000).start()  # ~250 KB each
    wait_for(lambda: len(load.accepted) >= 10, timeout=60, what="some mail under load")
    assert ingest.stop(signal.SIGTERM) == 0
    load.join()
    assert_whole_and_acknowledged(ingest, load)
    # Nothing half-written, and every stored message was answered 250 (none left unsaid).
    assert list((ingest.maildir / "tmp").iterdir()) == []
    assert len(ingest.messages()) == len(load.accepted)
    log = ingest.logs()
    assert "event=stopped" in log


def test_sigterm_closes_idle_sessions_with_421(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest()
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        client.ehlo("client.example")
        process = ingest.process
        assert process is not None
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        code, text = client.getreply()
        assert (code, text[:5]) == (421, b"4.3.2")


def test_kill_9_under_load_loses_no_acknowledged_message(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(**OPEN_LIMITS)
    load = Load(ingest.port, senders=12, lines=300).start()  # ~15 KB each
    wait_for(lambda: len(load.accepted) >= 60, timeout=60, what="mail under load")
    ingest.kill()
    load.join()
    assert_whole_and_acknowledged(ingest, load)
    # A restart clears whatever the crash left in tmp/ (planted here, should it be empty).
    (ingest.maildir / "tmp" / "1.M1R000000000000.onionpost,S=5").write_bytes(b"parti")
    again = start_ingest(maildir=ingest.maildir)
    assert list((again.maildir / "tmp").iterdir()) == []
    assert "event=tmp_cleaned" in again.logs()
    assert_whole_and_acknowledged(again, load)


# --- disk full --------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A Maildir on a 1 MB tmpfs (root only: skipped where mounting is not permitted). Its
    parent, with ingest's log and TLS files, stays on the ordinary disk."""
    mount_point = tmp_path / "tiny" / "inbox"
    mount_point.mkdir(parents=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
                             str(mount_point)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def send_until_refused(port: int, size_lines: int, limit: int = 50) -> list[tuple[int, bytes]]:
    outcomes = []
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("disk.example")
        for number in range(limit):
            client.mail("disk@example.org")
            client.rcpt(RCPT)
            code, reply = client.data(body(0, number, size_lines))
            outcomes.append((code, reply))
            if code != 250:
                break
    return outcomes


def test_disk_full_answers_452_4_3_1_and_recovers(
        tiny_disk: Path, start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(maildir=tiny_disk, **OPEN_LIMITS)
    outcomes = send_until_refused(ingest.port, size_lines=2000)  # ~100 KB each
    *accepted, (code, reply) = outcomes
    assert (code, reply[:5]) == (452, b"4.3.1")
    assert len(accepted) >= 3
    stored = stored_by_body(ingest)
    assert sorted(stored) == sorted(body(0, n, 2000) for n in range(len(accepted)))
    assert list((ingest.maildir / "tmp").iterdir()) == []
    # The owner fetches some mail away: ingest accepts again.
    for path in list(stored.values())[:3]:
        path.unlink()
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=30) as client:
        assert client.sendmail("disk@example.org", [RCPT], body(1, 1, 2000)) == {}
    assert body(1, 1, 2000) in stored_by_body(ingest)
    assert "event=write_failed error=ENOSPC" in ingest.logs()
    assert os.statvfs(tiny_disk).f_blocks * os.statvfs(tiny_disk).f_frsize <= 1 << 20
