"""Which rq jobs our workers run: the pure checks, on jobs as rq reads them from Redis."""

from __future__ import annotations

import pickle
import zlib

import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from onionpost.guardian import jobs as guardian_jobs
from onionpost.notifier import jobs as notifier_jobs
from onionpost.worker import DataJob, refusal

CONNECTION = redis.Redis()  # never used: nothing here talks to Redis


def job_from(stored: dict[str, bytes]) -> Job:
    """A job restored from the fields of its Redis hash, as a worker reads it."""
    job = DataJob("test-job", connection=CONNECTION, serializer=JSONSerializer)
    job.restore({"status": b"queued", **stored})
    return job


def data(*parts: object) -> bytes:
    return zlib.compress(JSONSerializer.dumps(list(parts)))


def test_allow_lists_name_our_jobs() -> None:
    guardian = {"messages_stored", "message_stored", "sweep", "new_mail_digest"}
    assert {f"onionpost.guardian.jobs.{name}" for name in guardian} == guardian_jobs.JOBS
    assert {"onionpost.notifier.jobs.publish"} == notifier_jobs.JOBS


def test_our_job_as_json_runs() -> None:
    job = job_from({"data": data("onionpost.guardian.jobs.sweep", None, [], {})})
    assert refusal(job, guardian_jobs.JOBS) is None


def test_jobs_that_are_not_ours_or_not_data_are_refused() -> None:
    pickled = pickle.dumps(("onionpost.guardian.jobs.sweep", None, (), {}))
    cases = {
        "not_json": {"data": zlib.compress(pickled)},
        "not_ours": {"data": data("subprocess.check_call", None, [["id"]], {})},
        "callbacks": {"data": data("onionpost.guardian.jobs.sweep", None, [], {}),
                      "failure_callback_name": b"os.abort"},
    }
    for reason, stored in cases.items():
        assert refusal(job_from(stored), guardian_jobs.JOBS) == reason
    on_an_instance = data("onionpost.guardian.jobs.sweep", "some text", [], {})
    assert refusal(job_from({"data": on_an_instance}), guardian_jobs.JOBS) == "not_ours"


def test_callbacks_named_in_redis_are_never_imported() -> None:
    job = job_from({"data": data("onionpost.guardian.jobs.sweep", None, [], {}),
                    "success_callback_name": b"os.abort", "failure_callback_name": b"os.abort",
                    "stopped_callback_name": b"os.abort"})
    assert (job.success_callback, job.failure_callback, job.stopped_callback) == (None,) * 3
