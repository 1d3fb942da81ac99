"""The watch's Redis state against a real redis-server: last day's p50, trimming, summary."""

from __future__ import annotations

import redis

from onionpost.watch import state
from onionpost.watch.episode import Episode
from onionpost.watch.probe import Result

NOW = 1_800_000_000.0


def save(client: redis.Redis, result: Result, **fields: str) -> None:
    with client.pipeline(transaction=True) as pipe:
        state.record(pipe, Episode(failures=0), result, fields)
        pipe.execute()


def test_summary_keeps_the_last_day_and_the_last_of_each_outcome(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert state.read_summary(client, NOW) is None
    save(client, Result(NOW - 2 * state.DAY, None, latency_seconds=100.0))  # trimmed later
    for number, latency in enumerate([3.0, 1.0, 2.0, 9.0]):
        save(client, Result(NOW - 1000 + number, None, latency_seconds=latency))
    save(client, Result(NOW - 10, "introduction", "SOCKS 0xf2"), last_uploaded="1234.5",
         upload_failed_since="2")
    summary = state.read_summary(client, NOW)
    assert summary is not None
    assert summary.p50_latency == 2.5  # the 100 s probe is older than a day
    assert summary.probes_last_day == 5
    assert summary.last_success is not None and summary.last_success.latency_seconds == 9.0
    assert summary.last_failure == Result(NOW - 10, "introduction", "SOCKS 0xf2")
    assert (summary.last_uploaded, summary.upload_failed_since) == (1234.5, 2)
    assert client.zcard(state.PROBES_KEY) == 5


def test_episode_round_trip_and_garbage(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert state.read_episode(client) == Episode()
    episode = Episode(failures=4, down_since=NOW, alerted=True, last_heal=NOW)
    save(client, Result(NOW, "banner"))
    client.set(state.EPISODE_KEY, "not json")
    assert state.read_episode(client) == Episode()
    with client.pipeline(transaction=True) as pipe:
        state.record(pipe, episode, Result(NOW, "banner"), {})
        pipe.execute()
    assert state.read_episode(client) == episode
