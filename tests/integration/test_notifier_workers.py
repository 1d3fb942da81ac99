"""The notifier as rq workers (`python -m onionpost notifier` processes, real redis-server)
posting to the ntfy test double (ntfy cannot be installed here; the double implements its
documented JSON publish endpoint and rejects what ntfy rejects)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from tests.support.guardian_rig import ServiceProcess, settle
from tests.support.net import free_port, wait_for
from tests.support.ntfy_double import NtfyDouble

from onionpost.events import NOTIFY_QUEUE, PUBLISH_JOB, Notice, queue
from onionpost.notifier.notices import LOW


def notice(number: int) -> Notice:
    return Notice(f"test-{number}", "new_mail", f"notice {number}", f"body {number}", LOW,
                  ["envelope"])


def enqueue(redis_url: str, *items: Notice) -> list[Job]:
    notify = queue(NOTIFY_QUEUE, redis.Redis.from_url(redis_url))
    return [notify.enqueue(PUBLISH_JOB, item.to_dict(), failure_ttl=3600) for item in items]


def test_three_notifiers_post_every_notice_once(
        start_service: Callable[..., ServiceProcess], ntfy: NtfyDouble,
        redis_url: str) -> None:
    workers = [start_service("notifier") for _ in range(3)]
    unique = [notice(number) for number in range(30)]
    # The same notices enqueued again, from several threads at once: none may be sent twice.
    threads = [threading.Thread(target=enqueue, args=(redis_url, *unique)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    wait_for(lambda: len(ntfy.messages()) >= 30, what="30 notices at ntfy")
    settle(redis_url)
    titles = [message["title"] for message in ntfy.messages()]
    assert sorted(titles) == sorted(item.title for item in unique)
    worked = [w for w in workers if "event=notified" in w.logs()]
    assert len(worked) >= 2  # the queue really was shared
    assert sum(w.logs().count("reason=already_sent") for w in workers) == 60


def test_ntfy_errors_5xx_are_retried_with_backoff(
        start_service: Callable[..., ServiceProcess], ntfy: NtfyDouble,
        redis_url: str) -> None:
    worker = start_service("notifier")
    ntfy.fail_next(503, count=2)
    [job] = enqueue(redis_url, notice(1))

    wait_for(lambda: ntfy.messages(), what="the notice after two failures")
    assert [m["title"] for m in ntfy.messages()] == ["notice 1"]
    assert [r["status"] for r in ntfy.requests()] == [503, 503, 200]
    assert worker.logs().count("event=ntfy_unavailable") == 2
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, what="job finished")


def test_ntfy_down_then_up_delivers(start_service: Callable[..., ServiceProcess],
                                   redis_url: str) -> None:
    port = free_port()
    worker = start_service("notifier", ntfy_url=f"http://127.0.0.1:{port}")
    enqueue(redis_url, notice(2))
    wait_for(lambda: "error=ConnectError action=retry" in worker.logs(), what="a refused post")
    double = NtfyDouble(port=port, tokens=("tk_onionposttests",)).start()
    try:
        wait_for(lambda: double.messages(), timeout=30, what="the notice once ntfy is up")
        assert [m["title"] for m in double.messages()] == ["notice 2"]
    finally:
        double.stop()


def test_a_bad_token_fails_the_job_with_a_clear_log_line(
        start_service: Callable[..., ServiceProcess], ntfy: NtfyDouble,
        redis_url: str) -> None:
    worker = start_service("notifier", ntfy_token="tk_wrong")
    [job] = enqueue(redis_url, notice(3))

    wait_for(lambda: job.get_status(refresh=True) == JobStatus.FAILED, what="the job to fail")
    failed = FailedJobRegistry(NOTIFY_QUEUE, connection=redis.Redis.from_url(redis_url))
    assert job.id in failed.get_job_ids()  # stays visible (rq-dashboard)
    assert ntfy.messages() == []
    assert [r["status"] for r in ntfy.requests()] == [401]  # not retried
    line = next(line for line in worker.logs().splitlines() if "event=ntfy_rejected" in line)
    assert "status=401" in line
    assert "ONIONPOST_NTFY_TOKEN" in line
    assert "tk_wrong" not in worker.logs()
