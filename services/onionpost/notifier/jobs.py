"""The notifier's rq job: post one notice to ntfy, once, retrying while ntfy is away.

Jobs run inside `onionpost notifier` (an rq SimpleWorker), which installs one Ntfy client
per process. The worker keeps no state of its own: any number of notifiers can share the
queue, and a notice id already posted is skipped (Redis SET NX), so none is sent twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis
from rq import Retry

from onionpost import worker
from onionpost.events import Notice
from onionpost.notifier.ntfy import Ntfy, NtfyRejectedError, NtfyUnavailableError

log = logging.getLogger("onionpost.notifier")

NOTICE_KEY = "onionpost:notice:{}"  # "sending" while one worker posts it, then "sent"
CLAIM_TTL = 120  # longer than one post with its timeouts
SENT_TTL = 7 * 86_400
RETRIES = 8  # first retry after retry_seconds, then doubling, at most 15 minutes apart
MAX_RETRY_INTERVAL = 900


def retry_intervals(first: int) -> list[int]:
    return [min(first * 2**attempt, MAX_RETRY_INTERVAL) for attempt in range(RETRIES)]


@dataclass
class Notifier:
    ntfy: Ntfy
    connection: redis.Redis
    retry_seconds: int = 5

    def publish(self, notice: Notice) -> Retry | str:
        key = NOTICE_KEY.format(notice.id)
        if not self.connection.set(key, "sending", nx=True, ex=CLAIM_TTL):
            log.info("event=notice_skipped kind=%s id=%s reason=already_sent", notice.kind,
                     notice.id)
            return "duplicate"
        try:
            message_id = self.ntfy.publish(notice)
        except NtfyUnavailableError as error:
            self.connection.delete(key)
            log.warning("event=ntfy_unavailable kind=%s id=%s error=%s action=retry",
                        notice.kind, notice.id, error)
            return Retry(max=RETRIES, interval=retry_intervals(self.retry_seconds))
        except NtfyRejectedError as error:
            self.connection.delete(key)
            log.error("event=ntfy_rejected kind=%s id=%s status=%d error=%s action=failed",
                      notice.kind, notice.id, error.status, error)
            raise
        self.connection.set(key, "sent", ex=SENT_TTL)
        log.info("event=notified kind=%s id=%s ntfy_id=%s", notice.kind, notice.id, message_id)
        return "sent"


_installed: worker.Installed[Notifier] = worker.Installed("notifier")
install, current = _installed.install, _installed.current


def publish(notice: dict[str, Any]) -> Retry | str:
    """Enqueued by the guardian with Notice.to_dict()."""
    return current().publish(Notice.from_dict(notice))


JOBS = worker.job_names(publish)
