"""The guardian's rq jobs: recount on each stored message and on each sweep, new-mail digests.

Jobs run inside `onionpost guardian` (an rq SimpleWorker), which installs the Guardian
below once at start: settings are read once, and one Redis pool serves every job.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import redis

from onionpost import worker
from onionpost.events import (
    EVENTS_QUEUE,
    FAILURE_TTL,
    NEW_MAIL_DIGEST_JOB,
    PAUSED_KEY,
    MessageStored,
    Notice,
    publish_notice,
    queue,
)
from onionpost.guardian import mailbox, policy, state
from onionpost.guardian.policy import FloodRule, Plan
from onionpost.maildir import Usage
from onionpost.notifier import notices
from onionpost.quota import Quota
from onionpost.usage import Tally

if TYPE_CHECKING:
    from onionpost.settings import Settings

log = logging.getLogger("onionpost.guardian")



def limits_of(settings: Settings) -> Quota:
    return Quota.of(settings)


@dataclass
class Guardian:
    settings: Settings
    connection: redis.Redis
    tally: Tally | None = None  # this process's view of the Maildir, made on first use

    def mailbox_tally(self) -> Tally:
        if self.tally is None:
            self.tally = Tally(self.settings.maildir, self.settings.flood_seconds,
                               self.settings.quota_rescan_interval)
        return self.tally

    def usage(self) -> Usage:
        """The Maildir's usage now: O(changes since the last look), not O(mailbox)."""
        return self.mailbox_tally().refresh()

    @property
    def limits(self) -> Quota:
        return limits_of(self.settings)

    @property
    def flood_rule(self) -> FloodRule:
        return FloodRule(self.settings.flood_messages, self.settings.flood_seconds)

    def recount(self, trigger: str) -> str:
        """Count the Maildir and apply the decision in one transaction; retried when another
        guardian changed the state meanwhile (so the count is never older than the state)."""
        with self.connection.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(PAUSED_KEY, state.FLOOD_KEY)
                    plan, usage = self._plan(pipe)
                    if plan.changes:
                        pipe.multi()
                        self._apply(pipe, plan)
                        pipe.execute()
                    else:
                        pipe.unwatch()
                except redis.WatchError:
                    continue
                break
        if plan.changes:
            _log(plan, usage, trigger)
        return plan.outcome

    def _plan(self, pipe: Any) -> tuple[Plan, Usage]:
        now = time.time()
        usage = self.usage()
        recent = self.mailbox_tally().recent(now)
        pause = state.read_pause(pipe)
        flooding = bool(pipe.exists(state.FLOOD_KEY))
        decision = policy.plan(usage, pause, flooding, recent, self.limits, self.flood_rule, now)
        return decision, usage

    def _apply(self, pipe: Any, plan: Plan) -> None:
        if plan.pause:
            state.write_pause(pipe, plan.pause)
        if plan.resume:
            pipe.delete(PAUSED_KEY)
        if plan.flood_start or plan.flood_continue:
            pipe.set(state.FLOOD_KEY, str(int(time.time())), ex=self.settings.flood_seconds)
        for notice in plan.notices:
            self.enqueue_notice(notice, pipe)

    def enqueue_notice(self, notice: Notice, pipe: Any = None) -> None:
        publish_notice(self.connection, notice, pipe)

    def note_new_mail(self, names: list[str]) -> None:
        """Count stored messages toward the next new-mail notice; the first message of a
        burst schedules the digest that sends one notice for the whole burst."""
        if self.settings.notify_new_mail == "off" or not names:
            return
        window = uuid.uuid4().hex[:12]
        delay = self.settings.new_mail_coalesce_seconds
        with self.connection.pipeline(transaction=True) as pipe:
            pipe.incrby(state.NEW_MAIL_COUNT, len(names))
            pipe.lpush(state.NEW_MAIL_FILES, *names[-notices.SUMMARY_LINES:])
            pipe.ltrim(state.NEW_MAIL_FILES, 0, notices.SUMMARY_LINES - 1)
            pipe.set(state.NEW_MAIL_WINDOW, window, nx=True, ex=2 * delay + 300)
            opened = pipe.execute()[-1]
        if opened:
            queue(EVENTS_QUEUE, self.connection).enqueue_in(
                timedelta(seconds=delay), NEW_MAIL_DIGEST_JOB, window, result_ttl=0,
                failure_ttl=FAILURE_TTL, description="new-mail digest")

    def digest(self, window: str) -> int:
        """Close the burst: one notice for every message counted since the last one."""
        with self.connection.pipeline(transaction=True) as pipe:
            pipe.get(state.NEW_MAIL_COUNT)
            pipe.lrange(state.NEW_MAIL_FILES, 0, -1)
            pipe.delete(state.NEW_MAIL_COUNT, state.NEW_MAIL_FILES, state.NEW_MAIL_WINDOW)
            count_raw, names, _ = pipe.execute()
        count = int(count_raw or 0)
        if count:
            summaries = (self._summaries([state.text(n) for n in names])
                         if self.settings.notify_new_mail == "summary" else None)
            usage = self.usage()
            self.enqueue_notice(notices.new_mail(f"newmail-{window}", count, usage,
                                                 self.limits, summaries))
        return count

    def _summaries(self, names: list[str]) -> list[tuple[str, str]]:
        found = []
        for name in names:
            path = mailbox.find(self.settings.maildir, name)
            if path is None:
                continue
            try:
                found.append(mailbox.sender_and_subject(path))
            except OSError:
                continue
        return found


def _log(plan: Plan, usage: Usage, trigger: str) -> None:
    if plan.pause:
        log.warning("event=paused reason=%s messages=%d bytes=%d trigger=%s",
                    plan.pause.reason, usage.messages, usage.bytes, trigger)
    elif plan.resume:
        log.info("event=resumed messages=%d bytes=%d trigger=%s",
                 usage.messages, usage.bytes, trigger)
    elif plan.flood_start:
        log.warning("event=flood messages=%d trigger=%s", usage.messages, trigger)


_installed: worker.Installed[Guardian] = worker.Installed("guardian")
install, current = _installed.install, _installed.current


# --- the jobs (their import paths are part of the queue protocol) -------------------------

def messages_stored(events: list[dict[str, Any]]) -> str:
    """Enqueued by ingest for the messages it put safely into new/ within a few
    milliseconds: one MessageStored.to_dict() each. One recount for them all."""
    guardian = current()
    outcome = guardian.recount("event")
    guardian.note_new_mail([MessageStored.from_dict(event).file for event in events])
    return outcome


def message_stored(event: dict[str, Any]) -> str:
    """One message's event, as ingest enqueued them before it batched them: such jobs
    can still be queued in Redis (appendonly) across an upgrade."""
    return messages_stored([event])


def sweep() -> str:
    """Enqueued by the guardian's cron schedule, and once at start."""
    return current().recount("sweep")


def new_mail_digest(window: str) -> int:
    return current().digest(window)


JOBS = worker.job_names(messages_stored, message_stored, sweep, new_mail_digest)
