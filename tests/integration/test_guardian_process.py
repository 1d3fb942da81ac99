"""`onionpost guardian` and `onionpost notifier` as container commands: their helpers (rq's
scheduler, the sweep cron) are threads of the one process, so no helper can outlive it
(nor cost memory of its own, as a forked process did), and on SIGTERM they stop cleanly:
each one's registration in Redis is gone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from rq import cron_scheduler_registry
from tests.support.guardian_rig import ServiceProcess
from tests.support.net import wait_for


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def helpers_registered(client: redis.Redis, command: str) -> list[str]:
    """rq's scheduler (its rq:scheduler:<role>-... hash) and the sweep cron (in rq's
    registry of cron schedulers), as rq registers them at start and removes them at stop."""
    schedulers = [key.decode() for key in client.scan_iter(f"rq:scheduler:{command}-*")]
    return sorted(schedulers) + sorted(cron_scheduler_registry.get_keys(client))


@pytest.mark.parametrize(("command", "helpers"), [("guardian", 2), ("notifier", 1)])
def test_helpers_are_threads_that_stop_with_the_worker(
        start_service: Callable[..., ServiceProcess], redis_url: str, command: str,
        helpers: int) -> None:
    client = redis.Redis.from_url(redis_url)
    service = start_service(command)
    assert service.process is not None
    wait_for(lambda: len(helpers_registered(client, command)) == helpers,
             what=f"{helpers} helpers registered in Redis")
    assert children(service.process.pid) == []
    assert service.stop() == 0
    assert helpers_registered(client, command) == []
