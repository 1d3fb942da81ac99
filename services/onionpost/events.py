"""The contract between our services: Redis keys, rq queues and job names, and the jobs'
payloads as dataclasses. Jobs are stored as JSON: a job is data, never code."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from rq import Queue
from rq.serializers import JSONSerializer

# Redis keys and rq queues (docs/architecture.md: keys start with onionpost:).
PAUSED_KEY = "onionpost:paused"  # hash {reason, since}; absent = accepting mail
EVENTS_QUEUE = "events"
NOTIFY_QUEUE = "notify"

# Jobs: the import path of the function that runs each (tests/unit/test_worker_jobs.py
# checks them against the workers' allow-lists).
MESSAGES_STORED_JOB = "onionpost.guardian.jobs.messages_stored"  # [MessageStored, ...]
MESSAGE_STORED_JOB = "onionpost.guardian.jobs.message_stored"  # one, from before batches
SWEEP_JOB = "onionpost.guardian.jobs.sweep"
NEW_MAIL_DIGEST_JOB = "onionpost.guardian.jobs.new_mail_digest"  # window id
PUBLISH_JOB = "onionpost.notifier.jobs.publish"  # Notice
NOTICE_RESULT_TTL = 3600
FAILURE_TTL = 7 * 86_400

# rq's default serializer is pickle: loading a job would run whatever code it carries. Every
# producer and worker of ours stores and reads jobs as JSON: a job is data, never code.
SERIALIZER = JSONSerializer


@dataclass(frozen=True, slots=True)
class MessageStored:
    """Ingest put one message safely into new/ (`file` is its name there). The circuit is
    a short hash, for telling floods apart; never the address."""

    file: str
    size: int
    recipients: int
    time: float = 0.0
    circuit: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "size": self.size, "recipients": self.recipients,
                "time": self.time, "circuit": self.circuit}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MessageStored:
        """Events of an older ingest may lack the later fields."""
        return cls(str(data.get("file", "")), int(data.get("size", 0)),
                   int(data.get("recipients", 0)), float(data.get("time", 0.0)),
                   str(data.get("circuit", "")))


@dataclass(frozen=True)
class Notice:
    """One ntfy message. `id` makes it idempotent: the notifier posts each id once."""

    id: str
    kind: str
    title: str
    message: str
    priority: int
    tags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notice:
        return cls(str(data["id"]), str(data["kind"]), str(data["title"]), str(data["message"]),
                   int(data["priority"]), [str(tag) for tag in data.get("tags", [])])


class JSONQueue(Queue):
    """An rq Queue whose jobs are always stored as JSON, whoever creates it (rq's own
    CronJob creates plain Queues: rq.cron.Queue is set to this class where we use it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["serializer"] = SERIALIZER
        super().__init__(*args, **kwargs)


def queue(name: str, connection: redis.Redis) -> Queue:
    return JSONQueue(name, connection=connection)


def connect(url: str, timeout: float = 2.0) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                health_check_interval=30)


def publish_notice(connection: redis.Redis, notice: Notice, pipeline: Any = None) -> None:
    """Queue a notice for the notifier (in `pipeline`'s transaction when given): it posts
    each notice id once."""
    queue(NOTIFY_QUEUE, connection).enqueue(
        PUBLISH_JOB, notice.to_dict(), pipeline=pipeline, result_ttl=NOTICE_RESULT_TTL,
        failure_ttl=FAILURE_TTL, description=f"notice {notice.kind} {notice.id}")
