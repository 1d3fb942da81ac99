"""Running our rq workers (guardian, notifier): jobs in-process and only our own (JSON data
naming one of our functions), rq's scheduler beside them, rq's log lines made one-line and
address-free, and surviving Redis outages."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import redis
from rq import SimpleWorker
from rq.exceptions import DeserializationError, StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.scheduler import RQScheduler

from onionpost.events import SERIALIZER, JSONQueue

log = logging.getLogger("onionpost.worker")
Service = TypeVar("Service")

WORKER_TTL = 30  # rq heartbeat; an idle worker wakes every WORKER_TTL - 15 s
RESTART_DELAY = 1.0
SCHEDULER_INTERVAL = 1  # seconds between rq's looks at scheduled jobs (retries, digests)
RQ_LOGGERS = ("rq.worker", "rq.job", "rq.scheduler", "rq.cron", "rq.queue", "httpx",
              "httpcore")
_ADDRESS = re.compile(r"\b[\w.-]+:\d{2,5}\b")
_UNSAFE = re.compile(r"[^\w.:-]")
HELPER_STOP_SECONDS = 10.0
Helper = Callable[[threading.Event], None]  # a loop that returns once the event is set


def job_names(*functions: Callable[..., Any]) -> frozenset[str]:
    """The names rq stores for these functions: a worker's allow-list."""
    return frozenset(f"{function.__module__}.{function.__qualname__}" for function in functions)


def refusal(job: Job, allowed: frozenset[str]) -> str | None:
    """Why a worker must not run this job, or None. Anyone who can write to Redis can queue
    a job, and rq imports and calls whatever a job names: we run only our functions, on
    JSON data, with none of rq's extras that import or call something else."""
    try:
        name, instance = job.func_name, job.instance
    except DeserializationError:
        return "not_json"
    if instance is not None or name not in allowed:
        return "not_ours"
    if (job._success_callback_name or job._failure_callback_name
            or job._stopped_callback_name or job.webhooks):
        return "callbacks"
    return None


def shown(text: object, limit: int = 80) -> str:
    """Untrusted text in a log line: no spaces or control characters, bounded."""
    return _UNSAFE.sub("?", str(text))[:limit]


class DataJob(Job):
    """An rq Job whose callbacks and webhooks are never used. Ours have none, and rq would
    import and call a callback named in Redis even for a job it does not run (when it
    cleans up a job left in its started registry): a name in Redis is not code to run."""

    @property
    def success_callback(self) -> None:
        return None

    @property
    def failure_callback(self) -> None:
        return None

    @property
    def stopped_callback(self) -> None:
        return None

    def send_webhooks(self, *args: Any, **kwargs: Any) -> None:
        return None


class ServiceWorker(SimpleWorker):
    """rq's SimpleWorker: each job runs in this process instead of a fork, so what a job
    needs per process (one httpx client, one Redis pool) lives as long as the worker, and
    a short job costs no fork. Our jobs are short and never block for long. A job that
    is not one of `allowed` fails without running, with one log line."""

    max_connection_wait_time = 5.0  # rq waits up to 60 s between reconnects by default
    stopping = False
    allowed: frozenset[str] = frozenset()

    def request_stop(self, signum: Any, frame: Any) -> None:
        self.stopping = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]  # rq left it unannotated

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        reason = refusal(job, self.allowed)
        if reason is None:
            return super().perform_job(job, queue, execution)
        function = "?" if reason == "not_json" else shown(job.func_name)
        log.warning("event=job_refused queue=%s job=%s reason=%s function=%s",
                    shown(queue.name), shown(job.id), reason, function)
        self.handle_job_failure(job, queue, started_job_registry=queue.started_job_registry,
                                exc_string=f"refused by onionpost: {reason}",
                                execution=execution)
        return False


class OneLine(logging.Filter):
    """rq's warnings as one line without traceback or Redis address (logs name no host)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage().split("\n", 1)[0]
        if record.exc_info and record.exc_info[0]:
            text += f" error={record.exc_info[0].__name__}"
        record.msg, record.args = f'event=rq text="{_ADDRESS.sub("redis", text)}"', ()
        record.exc_info = record.exc_text = None
        return True


def quiet_rq(level: str) -> None:
    """rq logs every job and httpx every request at INFO: keep warnings unless we debug."""
    for name in RQ_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level if level == "DEBUG" else "WARNING")
        if not any(isinstance(f, OneLine) for f in logger.filters):
            logger.addFilter(OneLine())


def run(queue: str, redis_url: str, role: str, log_level: str, allowed: frozenset[str],
        helpers: dict[str, Helper] | None = None) -> int:
    """Work on `queue` until SIGTERM/SIGINT, running only the `allowed` jobs, with rq's
    scheduler (Retry intervals, jobs enqueued for later) and any `helpers` (name -> loop
    that returns once its event is set) in threads of this process. A worker that lost
    Redis in the middle of a job quits (rq's choice); we start a fresh one instead of
    dying with it."""
    quiet_rq(log_level)
    stop_on_signals()
    stop = threading.Event()
    loops: dict[str, Helper] = {
        f"{role}-scheduler": functools.partial(_schedule, queue, redis_url, role),
        **(helpers or {})}
    threads = [start_helper(name, loop, stop) for name, loop in loops.items()]
    try:
        return _work(queue, redis_url, role, allowed)
    except StopRequested:
        return 0
    finally:
        stop.set()
        for thread in threads:
            thread.join(HELPER_STOP_SECONDS)


def stop_on_signals() -> None:
    """Until rq installs its own handlers, SIGTERM/SIGINT stop us cleanly (exit 0)."""
    def stop(_signum: int, _frame: Any) -> None:
        raise StopRequested

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def _work(queue: str, redis_url: str, role: str, allowed: frozenset[str]) -> int:
    while True:
        current: ServiceWorker | None = None
        try:
            current = ServiceWorker([queue], connection=redis.Redis.from_url(redis_url),
                                    name=f"{role}-{uuid.uuid4().hex[:8]}",
                                    worker_ttl=WORKER_TTL, log_job_description=False,
                                    serializer=SERIALIZER, queue_class=JSONQueue,
                                    job_class=DataJob)
            current.allowed = allowed
            log.info("event=worker_start role=%s queue=%s", role, queue)
            current.work(logging_level=logging.getLogger("rq.worker").level)  # type: ignore[arg-type]  # rq says str but hands it to setup_loghandlers, typed int | str
        except StopRequested:
            return 0
        except redis.RedisError as error:
            log.warning("event=redis_down role=%s error=%s", role, type(error).__name__)
        if current is not None and current.stopping:
            return 0
        log.warning("event=worker_restart role=%s", role)
        if _rest():
            return 0


def _schedule(queue: str, redis_url: str, role: str, stop: threading.Event) -> None:
    """rq's scheduler for `queue` (one of all running schedulers holds the queue's lock):
    RQScheduler.work()'s loop, which cannot run here as it is (it installs signal handlers,
    which only the main thread may)."""
    scheduler = RQScheduler([queue], connection=redis.Redis.from_url(redis_url),
                            interval=SCHEDULER_INTERVAL, name=f"{role}-{uuid.uuid4().hex[:8]}",
                            serializer=SERIALIZER,
                            logging_level=logging.getLogger("rq.scheduler").level)
    scheduler.register_birth()
    try:
        while not stop.is_set():
            if scheduler.should_reacquire_locks:
                scheduler.acquire_locks()
            scheduler.heartbeat()
            scheduler.enqueue_scheduled_jobs()
            stop.wait(scheduler.interval)
    finally:
        with contextlib.suppress(redis.RedisError):
            scheduler.stop()


def start_helper(name: str, loop: Helper, stop: threading.Event) -> threading.Thread:
    """A thread that runs `loop` until `stop` is set, starting it again after a Redis
    error. Threads, not processes: a forked helper shares its parent's memory only until
    either touches it, and CPython's reference counts touch it at once (a helper process
    cost 8 MiB of anonymous memory of its own, the same as a thread)."""
    thread = threading.Thread(target=_supervise, args=(name, loop, stop), name=name,
                              daemon=True)
    thread.start()
    return thread


def _supervise(name: str, loop: Helper, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            loop(stop)
        except redis.RedisError as error:
            log.warning("event=redis_down role=%s error=%s", name, type(error).__name__)
        stop.wait(RESTART_DELAY)


def _rest() -> bool:
    """Sleep before a restart; True when SIGTERM/SIGINT came meanwhile (time to stop)."""
    stop_on_signals()
    try:
        time.sleep(RESTART_DELAY)
    except StopRequested:
        return True
    return False


class Installed(Generic[Service]):
    """What a module's rq jobs work with (settings read once, one Redis pool, one HTTP
    client), installed by the command that runs the worker before the first job."""

    def __init__(self, command: str) -> None:
        self._command = command
        self._service: Service | None = None

    def install(self, service: Service) -> None:
        self._service = service

    def current(self) -> Service:
        if self._service is None:
            raise RuntimeError(f"these jobs run inside `onionpost {self._command}`, "
                               "not a bare rq worker")
        return self._service
