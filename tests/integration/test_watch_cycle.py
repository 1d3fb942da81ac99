"""The watch's cycle against a real redis-server: one alert per episode, one heal per 30 min,
also when Redis goes away in the middle. The probe and the service tor are the I/O edge
(e2e covers them over Tor): here a scripted sequence of probe results and a recorded heal."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import redis
from tests.conftest import TEST_DOMAIN
from tests.support.servers import RedisServer

from onionpost import events
from onionpost.events import NOTIFY_QUEUE
from onionpost.settings import load_settings
from onionpost.watch.command import Watch
from onionpost.watch.probe import Result


@dataclass
class ScriptedWatch(Watch):
    stages: deque[str | None] = field(default_factory=deque)
    heals: int = 0

    def probe(self) -> Result:
        return Result(time.time(), self.stages.popleft(), "scripted")

    def service_controller(self) -> None:
        return None

    def heal(self) -> str:
        self.heals += 1
        return "recorded"


def watch_for(url: str, stages: list[str | None]) -> ScriptedWatch:
    settings = load_settings(redis_url=url, watch_failures=2, maildir="/nonexistent")
    return ScriptedWatch(settings, redis.Redis.from_url(url, socket_timeout=1,
                                                        socket_connect_timeout=1),
                         TEST_DOMAIN, stages=deque(stages))


def kinds(url: str) -> list[str]:
    jobs = events.queue(NOTIFY_QUEUE, redis.Redis.from_url(url)).get_jobs()
    return [job.args[0]["kind"] for job in jobs]


def test_one_alert_one_heal_and_one_recovery(redis_url: str) -> None:
    watch = watch_for(redis_url, ["introduction"] * 6 + [None, None])
    for _ in range(8):
        watch.cycle()
    assert kinds(redis_url) == ["watch_down", "watch_back"]
    assert watch.heals == 1


def test_a_redis_outage_repeats_neither_alert_nor_heal(redis_server: RedisServer,
                                                       redis_url: str) -> None:
    watch = watch_for(redis_url, ["descriptor"] * 6)
    watch.cycle()
    redis_server.stop()
    watch.cycle()  # the alert's moment: its notice is lost, logged
    watch.cycle()
    redis_server.start()
    for _ in range(3):
        watch.cycle()
    assert kinds(redis_server.url) == []  # lost in the outage, not re-sent later
    assert watch.heals == 1
    assert watch.episode.alerted


def test_a_restarted_watch_does_not_alert_again(redis_url: str) -> None:
    first = watch_for(redis_url, ["banner"] * 3)
    for _ in range(3):
        first.cycle()
    second = watch_for(redis_url, ["banner"] * 3 + [None])
    second.restore()
    for _ in range(4):
        second.cycle()
    assert kinds(redis_url) == ["watch_down", "watch_back"]
    assert first.heals + second.heals == 1
