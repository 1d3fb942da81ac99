"""Jobs are data, never code: anyone who can write to Redis can queue a job, and the guardian
(a real `onionpost guardian` on a real redis-server) runs only its own functions, on JSON
arguments. Each attack here tries to create a marker file from inside the guardian."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Callback, Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer, PickleSerializer
from tests.support.guardian_rig import ServiceProcess
from tests.support.net import wait_for

from onionpost.events import EVENTS_QUEUE, queue

SWEEP = "onionpost.guardian.jobs.sweep"


class Payload:
    """Unpickling this runs a shell command (what a pickled rq argument can do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return subprocess.check_call, (["sh", "-c", f"id > {self.marker}"],)


def ended(job: Job) -> bool:
    return job.get_status(refresh=True) in (JobStatus.FAILED, JobStatus.FINISHED)


def refused_lines(guardian: ServiceProcess) -> list[str]:
    return [line for line in guardian.logs().splitlines() if "event=job_refused" in line]


def assert_refused_once(guardian: ServiceProcess, job: Job, reason: str) -> None:
    assert job.get_status() == JobStatus.FAILED
    [line] = refused_lines(guardian)  # one line, and the sweeps (JSON) were not refused
    assert f"job={job.id}" in line and f"reason={reason}" in line, line
    assert guardian.alive()


@pytest.mark.parametrize("serializer", [PickleSerializer, JSONSerializer],
                         ids=["pickle", "json"])
def test_a_foreign_function_on_events_does_not_run(
        start_service: Callable[..., ServiceProcess], redis_url: str, tmp_path: Path,
        serializer: Any) -> None:
    guardian = start_service("guardian")
    marker = tmp_path / "foreign-ran"
    events = Queue(EVENTS_QUEUE, connection=redis.Redis.from_url(redis_url),
                   serializer=serializer)
    job = events.enqueue("subprocess.check_call", ["sh", "-c", f"id > {marker}"])
    wait_for(lambda: ended(job), what="the guardian to take the job")
    assert not marker.exists()
    assert_refused_once(guardian, job, "not_json" if serializer is PickleSerializer
                        else "not_ours")


def test_an_allowed_job_whose_argument_is_a_pickle_payload_does_not_run_it(
        start_service: Callable[..., ServiceProcess], redis_url: str, tmp_path: Path) -> None:
    guardian = start_service("guardian")
    marker = tmp_path / "payload-ran"
    events = Queue(EVENTS_QUEUE, connection=redis.Redis.from_url(redis_url))  # pickle
    job = events.enqueue(SWEEP, Payload(marker))
    wait_for(lambda: ended(job), what="the guardian to take the job")
    assert not marker.exists()
    assert_refused_once(guardian, job, "not_json")


def test_an_allowed_job_with_a_callback_does_not_run(
        start_service: Callable[..., ServiceProcess], redis_url: str) -> None:
    """rq imports and calls a job's callbacks by name: ours never have any."""
    guardian = start_service("guardian")
    events = queue(EVENTS_QUEUE, redis.Redis.from_url(redis_url))
    job = events.enqueue(SWEEP, on_success=Callback("os.abort"))
    wait_for(lambda: ended(job), what="the guardian to take the job")
    assert_refused_once(guardian, job, "callbacks")
