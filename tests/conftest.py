"""Fixtures shared by all test suites: a real redis-server and a real ingest process."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.servers import IngestProcess, RedisServer

# Fixtures for the guardian and notifier: ntfy double, worker processes.
pytest_plugins = ["tests.support.guardian_rig"]

# CI must not fail on a new random example one day and pass the next: `make test` replays
# the same examples. `HYPOTHESIS_PROFILE=explore make test` searches new ones.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

# A valid v3 onion address (checksum and version check out).
TEST_DOMAIN = "eo7i3kzhpluc4njwn5laut5olk7pltpzqwaqdmlyuvqfs5t2556bp4id.onion"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A clean database for each test (the server itself is shared by the session)."""
    import redis

    if redis_server.process is None:
        redis_server.start()
    redis.Redis.from_url(redis_server.url).flushall()
    return redis_server.url


@pytest.fixture
def start_ingest(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., IngestProcess]]:
    """Start `onionpost ingest` processes; every one is stopped after the test."""
    started: list[IngestProcess] = []

    def start(maildir: Path | None = None, domain: str = TEST_DOMAIN, wait: bool = True,
              **settings: object) -> IngestProcess:
        env = {"ONIONPOST_REDIS_URL": redis_url, "ONIONPOST_LOG_LEVEL": "INFO"}
        env.update({f"ONIONPOST_{key.upper()}": str(value) for key, value in settings.items()})
        ingest = IngestProcess(maildir or tmp_path / "mail" / "inbox", domain, env)
        started.append(ingest)
        return ingest.start(wait=wait)

    yield start
    for ingest in started:
        ingest.stop()
