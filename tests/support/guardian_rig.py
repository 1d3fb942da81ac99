"""Fixtures for guardian and notifier tests: the ntfy double, and onionpost workers as
processes (`python -m onionpost guardian|notifier`), with helpers to read their effects."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue, Worker
from rq.registry import StartedJobRegistry

from onionpost import maildir
from onionpost.events import EVENTS_QUEUE, NOTIFY_QUEUE
from tests.support.net import wait_for
from tests.support.ntfy_double import NtfyDouble

NTFY_TOKEN = "tk_onionposttests"
NTFY_TOPIC = "onionpost-tests"


@dataclass
class ServiceProcess:
    """One `python -m onionpost <command>` process, its output in log_path."""

    command: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "onionpost", self.command],
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: "event=worker_start" in self.logs() or self.process.poll() is not None,
                 what=f"{self.command} to start")
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.command} exited: {self.logs()}")
        return self

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)
        finally:
            self.process = None


@pytest.fixture
def ntfy() -> Iterator[NtfyDouble]:
    """The ntfy test double (ntfy itself cannot be installed here), requiring a token."""
    double = NtfyDouble(tokens=(NTFY_TOKEN,)).start()
    yield double
    double.stop()


@pytest.fixture
def mailbox(tmp_path: Path) -> Path:
    path = tmp_path / "mail" / "inbox"
    maildir.ensure(path)
    return path


@pytest.fixture
def service_env(redis_url: str, mailbox: Path, ntfy: NtfyDouble) -> dict[str, str]:
    """Settings shared by ingest, guardian and notifier in one test (tests may add more)."""
    return {"ONIONPOST_REDIS_URL": redis_url, "ONIONPOST_MAILDIR": str(mailbox),
            "ONIONPOST_NTFY_URL": ntfy.url, "ONIONPOST_NTFY_TOPIC": NTFY_TOPIC,
            "ONIONPOST_NTFY_TOKEN": NTFY_TOKEN, "ONIONPOST_SWEEP_INTERVAL": "1",
            "ONIONPOST_NTFY_RETRY_SECONDS": "1", "ONIONPOST_LOG_LEVEL": "INFO"}


@pytest.fixture
def start_service(tmp_path: Path, service_env: dict[str, str]
                  ) -> Iterator[Callable[..., ServiceProcess]]:
    """start_service("guardian", MAX_MESSAGES=10): settings by name, ONIONPOST_ implied."""
    started: list[ServiceProcess] = []

    def start(command: str, **settings: object) -> ServiceProcess:
        env = {**service_env, **{f"ONIONPOST_{k.upper()}": str(v) for k, v in settings.items()}}
        service = ServiceProcess(command, env, tmp_path / f"{command}-{len(started)}.log")
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop()


def deliver(mailbox: Path, count: int, size: int = 200) -> list[Path]:
    """Put messages straight into new/ the way ingest does (for tests of the guardian)."""
    paths = []
    for _ in range(count):
        name = maildir.file_name(maildir.new_queue_id(), size)
        tmp = maildir.write_tmp(mailbox, name, [b"Subject: t\r\n\r\n", b"x" * (size - 15)])
        paths.append(maildir.publish(mailbox, tmp))
    return paths


def drain(mailbox: Path) -> int:
    """What the owner's fetch does: take every message away."""
    removed = 0
    for sub in ("new", "cur"):
        for path in (mailbox / sub).iterdir():
            path.unlink()
            removed += 1
    return removed


def notices(double: NtfyDouble, kind_title: str | None = None) -> list[dict[str, Any]]:
    """Messages at the double, optionally only those whose title starts with kind_title."""
    return [m for m in double.messages(NTFY_TOPIC)
            if kind_title is None or m.get("title", "").startswith(kind_title)]


def settle(redis_url: str, rounds: int = 2, pause: float = 1.5) -> None:
    """Wait until no job is queued or running on events and notify (when some worker
    serves it), `rounds` times in a row `pause` seconds apart: whatever was going to be
    done or sent has been."""
    client = redis.Redis.from_url(redis_url)
    quiet = 0

    def busy(name: str) -> bool:
        queue = Queue(name, connection=client)
        return bool(Worker.count(queue=queue) and
                    (len(queue) or StartedJobRegistry(name, connection=client).count))

    def idle() -> bool:
        nonlocal quiet
        busy_now = busy(EVENTS_QUEUE) or busy(NOTIFY_QUEUE)
        quiet = 0 if busy_now else quiet + 1
        if quiet < rounds:
            time.sleep(pause)
            return False
        return True

    wait_for(idle, timeout=60, what="queues to settle")
