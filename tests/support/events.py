"""Reading what ingest queued for the guardian."""

from __future__ import annotations

from typing import Any

import redis

from onionpost.events import EVENTS_QUEUE, MESSAGES_STORED_JOB, queue


def queued_events(redis_url: str) -> list[dict[str, Any]]:
    """Every event in the `messages_stored` jobs waiting on the events queue, oldest first."""
    jobs = queue(EVENTS_QUEUE, redis.Redis.from_url(redis_url)).get_jobs()
    assert {job.func_name for job in jobs} <= {MESSAGES_STORED_JOB}, jobs
    return [event for job in jobs for event in job.args[0]]
