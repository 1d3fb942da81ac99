"""`onionpost guardian` (the rq worker and its sweep schedule), `onionpost pause`, `resume`."""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import threading
import uuid
from typing import TYPE_CHECKING

import redis
import rq.cron
from rq.cron import CronScheduler

from onionpost import events, maildir, worker
from onionpost.exits import EX_OK, EX_TEMPFAIL, EX_UNAVAILABLE, CommandError
from onionpost.guardian import jobs, policy, state
from onionpost.notifier.notices import usage_text
from onionpost.service_settings import load_settings as load_settings  # cli.run's reader

if TYPE_CHECKING:
    from onionpost.settings import Settings

log = logging.getLogger("onionpost.guardian")

SWEEP_TIMEOUT = 60


def main(argv: list[str], settings: Settings) -> int:
    argparse.ArgumentParser(
        prog="onionpost guardian",
        description="Enforce the mailbox limits: an rq worker on the 'events' queue that "
                    "recounts the Maildir after every stored message and every "
                    "ONIONPOST_SWEEP_INTERVAL seconds, pauses ingest past a limit, resumes "
                    "it under the resume marks and warns of floods.").parse_args(argv)
    jobs.install(jobs.Guardian(settings, events.connect(settings.redis_url)))
    log.info("event=start sweep_interval=%d resume_percent=%d", settings.sweep_interval,
             settings.resume_percent)
    sweeps = functools.partial(run_sweeps, settings)
    return worker.run(events.EVENTS_QUEUE, settings.redis_url, "guardian", settings.log_level,
                      jobs.JOBS, helpers={"guardian-sweeps": sweeps})


def run_sweeps(settings: Settings, stop: threading.Event) -> None:
    """The sweep, with rq's own CronScheduler: one `sweep` job on `events` at start and
    every sweep_interval seconds, until `stop` is set. It keeps its timing in memory, so
    sweeps go on after Redis lost its data (the count from disk then restores the pause);
    after a Redis error worker.run starts a new one (which sweeps at once). The loop is
    CronScheduler.start()'s, which cannot run in a thread as it is (it installs signal
    handlers). rq 3.0's CronJob takes no serializer and enqueues with pickle: in this
    process its queues are our JSON ones."""
    rq.cron.Queue = events.JSONQueue  # type: ignore[attr-defined]  # rq.cron's own import of Queue, replaced
    cron = CronScheduler(events.connect(settings.redis_url),
                         name=f"guardian-sweeps-{uuid.uuid4().hex[:8]}")
    cron.register(jobs.sweep, events.EVENTS_QUEUE, interval=settings.sweep_interval,
                  job_timeout=SWEEP_TIMEOUT, ttl=settings.sweep_interval, result_ttl=0,
                  failure_ttl=events.FAILURE_TTL)
    cron.register_birth()
    try:
        while not stop.is_set():
            if cron.enqueue_jobs():
                cron.save()
            cron.heartbeat()
            stop.wait(cron.calculate_sleep_interval())
    finally:
        with contextlib.suppress(redis.RedisError):
            cron.register_death()


def pause(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(
        prog="onionpost pause",
        description="Stop accepting mail now (senders get 421 and retry later). The "
                    "guardian never lifts a pause made by hand: run `onionpost resume`.")
    parser.add_argument("reason", nargs="?", default="by hand",
                        help="a few words kept with the pause (default: by hand)")
    args = parser.parse_args(argv)
    try:
        record = state.pause_by_owner(events.connect(settings.redis_url), args.reason)
    except redis.RedisError as error:
        raise CommandError(EX_UNAVAILABLE, f"Redis unreachable ({type(error).__name__})") from None
    print(f"paused by {record.by}: {record.reason}")
    return EX_OK


def resume(argv: list[str], settings: Settings) -> int:
    argparse.ArgumentParser(
        prog="onionpost resume",
        description="Accept mail again. Refused while the mailbox is still at its limit "
                    "(the guardian would pause again at once): fetch mail first.",
    ).parse_args(argv)
    limits = jobs.limits_of(settings)
    usage = maildir.scan(settings.maildir)
    if policy.limit_reached(usage, limits):
        raise CommandError(EX_TEMPFAIL, f"the mailbox is full ({usage_text(usage, limits)}); "
                                        "fetch mail first")
    try:
        lifted = state.resume(events.connect(settings.redis_url))
    except redis.RedisError as error:
        raise CommandError(EX_UNAVAILABLE, f"Redis unreachable ({type(error).__name__})") from None
    print(f"resumed (was paused by {lifted.by}: {lifted.reason})" if lifted
          else "not paused: mail is accepted")
    return EX_OK
