"""Running one of our rq workers (guardian, notifier): jobs in-process, rq's scheduler, and
coming back by itself after Redis was away."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import redis
from rq import SimpleWorker
from rq.exceptions import StopRequested

log = logging.getLogger("onionpost.worker")

WORKER_TTL = 30  # rq heartbeat; the idle worker wakes every WORKER_TTL - 15 s
MAINTENANCE_INTERVAL = 15  # rq restarts its scheduler process at most this late
RESTART_DELAY = 1.0
RQ_LOGGERS = ("rq.worker", "rq.job", "rq.scheduler", "rq.cron", "rq.queue", "httpx", "httpcore")


class ServiceWorker(SimpleWorker):
    """rq's SimpleWorker: each job runs in this process instead of a fork, so what a job
    needs per process (one httpx client, one Redis pool) lives as long as the worker, and
    a short job costs no fork. Our jobs are short and never block for long."""

    max_connection_wait_time = 5.0  # rq waits up to 60 s between reconnects by default
    stopping = False

    def request_stop(self, signum: Any, frame: Any) -> None:
        self.stopping = True
        super().request_stop(signum, frame)


def quiet_rq(level: str) -> None:
    """rq logs every job and httpx every request at INFO: keep their warnings unless we debug."""
    for name in RQ_LOGGERS:
        logging.getLogger(name).setLevel(level if level == "DEBUG" else "WARNING")


def run(queue: str, redis_url: str, role: str, log_level: str) -> int:
    """Work on `queue` until SIGTERM/SIGINT. A worker that lost Redis in the middle of a job
    quits (rq's choice); we start a fresh one instead of dying with it."""
    quiet_rq(log_level)
    while True:
        current: ServiceWorker | None = None
        try:
            current = ServiceWorker([queue], connection=redis.Redis.from_url(redis_url),
                                    name=f"{role}-{uuid.uuid4().hex[:8]}",
                                    worker_ttl=WORKER_TTL,
                                    maintenance_interval=MAINTENANCE_INTERVAL,
                                    log_job_description=False)
            log.info("event=worker_start role=%s queue=%s", role, queue)
            current.work(with_scheduler=True, logging_level=logging.getLogger("rq.worker").level)
        except StopRequested:
            return 0
        except redis.RedisError as error:
            log.warning("event=redis_down role=%s error=%s", role, type(error).__name__)
        if current is not None and current.stopping:
            return 0
        log.warning("event=worker_restart role=%s", role)
        try:
            time.sleep(RESTART_DELAY)
        except StopRequested:
            return 0
