"""The watch's state in Redis: the open episode, the probes of the last day, publication."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

import redis

from onionpost.guardian.state import text
from onionpost.watch.episode import Episode
from onionpost.watch.probe import Result

EPISODE_KEY = "onionpost:watch:episode"  # JSON of Episode
PROBES_KEY = "onionpost:watch:probes"  # sorted set: JSON of Result, scored by its time
SUMMARY_KEY = "onionpost:watch:summary"  # hash: last_success, last_failure (JSON), uploads
DAY = 86_400
MAX_PROBES = 20_000  # a day at 5 s intervals; the default keeps 288


def read_episode(client: redis.Redis) -> Episode:
    raw = client.get(EPISODE_KEY)
    if not raw:
        return Episode()
    try:
        return Episode.from_dict(json.loads(raw))
    except (ValueError, TypeError):
        return Episode()


def record(pipe: Any, episode: Episode, result: Result, publication: dict[str, str]) -> None:
    """Queue on a MULTI pipeline: the episode, this probe, and the summary fields."""
    pipe.set(EPISODE_KEY, json.dumps(episode.to_dict()))
    pipe.zadd(PROBES_KEY, {json.dumps(result.to_dict()): result.at})
    pipe.zremrangebyscore(PROBES_KEY, "-inf", result.at - DAY)
    pipe.zremrangebyrank(PROBES_KEY, 0, -MAX_PROBES - 1)
    last = "last_success" if result.stage is None else "last_failure"
    pipe.hset(SUMMARY_KEY, mapping={last: json.dumps(result.to_dict()), **publication})


@dataclass(frozen=True)
class Summary:
    """What `onionpost status` shows of the watch."""

    last_success: Result | None
    last_failure: Result | None
    p50_latency: float | None  # seconds, successful probes of the last day
    probes_last_day: int
    last_uploaded: float | None
    upload_failed_since: int
    last_heal: str


def read_summary(client: redis.Redis, now: float | None = None) -> Summary | None:
    """None when the watch never ran."""
    now = time.time() if now is None else now
    fields = {text(k): text(v) for k, v in client.hgetall(SUMMARY_KEY).items()}
    if not fields:
        return None
    probes = [Result.from_dict(json.loads(raw))
              for raw in client.zrangebyscore(PROBES_KEY, now - DAY, "+inf")]
    latencies = [p.latency_seconds for p in probes if p.latency_seconds is not None]
    return Summary(_result(fields.get("last_success")), _result(fields.get("last_failure")),
                   statistics.median(latencies) if latencies else None, len(probes),
                   float(fields["last_uploaded"]) if fields.get("last_uploaded") else None,
                   int(fields.get("upload_failed_since", "0") or 0), fields.get("last_heal", ""))


def _result(raw: str | None) -> Result | None:
    return Result.from_dict(json.loads(raw)) if raw else None
