"""Redis restarts in the middle of a flood: no mail is lost, and once Redis is back the
guardian (real rq workers, real redis-server, real ingest) restores the right state from
the disk. ntfy is the documented-API test double (tests/support/ntfy_double.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
from tests.integration.test_guardian_flood import FLOOD_INGEST, LIMIT, RCPT, greeting
from tests.support.flood import Flooder
from tests.support.guardian_rig import ServiceProcess, deliver, notices, settle
from tests.support.net import wait_for
from tests.support.ntfy_double import NtfyDouble
from tests.support.servers import IngestProcess, RedisServer

from onionpost.events import PAUSED_KEY

DOWNTIME = 1.5


def paused_by_guardian(redis_url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(redis_url).hget(PAUSED_KEY, "by") == b"guardian")
    except redis.ConnectionError:
        return False


def test_redis_restart_during_a_flood_loses_no_mail_and_the_pause_follows(
        start_ingest: Callable[..., IngestProcess],
        start_service: Callable[..., ServiceProcess], mailbox: Path, ntfy: NtfyDouble,
        redis_server: RedisServer, redis_url: str) -> None:
    settings = {"max_messages": LIMIT, "notify_new_mail": "off", "flood_messages": 10_000}
    guardian = start_service("guardian", **settings)
    notifier = start_service("notifier", **settings)
    ingest = start_ingest(maildir=mailbox, **FLOOD_INGEST)
    before = Flooder(ingest.port, RCPT, sessions=4).run(total=40)
    assert len(before.accepted) == 40

    redis_server.stop()
    flooder = Flooder(ingest.port, RCPT, sessions=10)
    flood = threading.Thread(target=flooder.run, kwargs={"total": 400})
    flood.start()
    time.sleep(DOWNTIME)  # mail keeps arriving while Redis is away
    redis_server.start()
    flood.join()

    accepted = before.queue_ids | flooder.result.queue_ids
    stored = [path.name for path in ingest.messages()]
    assert len(stored) <= LIMIT
    assert len(accepted) == len(stored)
    assert all(any(queue_id in name for name in stored) for queue_id in accepted)
    assert "event=redis_down" in ingest.logs()
    wait_for(lambda: paused_by_guardian(redis_url), what="the guardian to pause again")
    wait_for(lambda: greeting(ingest.port) == 421, what="ingest to refuse at the greeting")
    wait_for(lambda: notices(ntfy, "Mailbox full"), what="the alert")
    settle(redis_url)
    assert len(notices(ntfy, "Mailbox full")) == 1  # the pause came after the restart
    assert guardian.alive() and notifier.alive()


def test_a_pause_lost_with_redis_data_is_restored_from_the_disk(
        start_ingest: Callable[..., IngestProcess],
        start_service: Callable[..., ServiceProcess], mailbox: Path,
        redis_server: RedisServer, redis_url: str) -> None:
    deliver(mailbox, 10)
    guardian = start_service("guardian", max_messages=10)  # its first sweep pauses
    ingest = start_ingest(maildir=mailbox, max_messages=10, tls="off")
    wait_for(lambda: paused_by_guardian(redis_url), what="the sweep at start to pause")
    wait_for(lambda: greeting(ingest.port) == 421, what="ingest to see the pause")

    redis_server.restart()  # no persistence in tests: the pause record is gone
    wait_for(lambda: paused_by_guardian(redis_url), what="the guardian to pause again")
    wait_for(lambda: greeting(ingest.port) == 421, what="ingest to see the pause again")
    assert guardian.alive()
