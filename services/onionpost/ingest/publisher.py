"""Ingest's side of the `events` queue: `messages_stored` jobs enqueued in batches from a
background thread, and whether this process can reach Redis."""

from __future__ import annotations

import collections
import logging
import threading
import time

import redis
from rq import Queue

from onionpost.events import EVENTS_QUEUE, MESSAGES_STORED_JOB, MessageStored, connect, queue

BATCH_SECONDS = 0.02  # events wait at most this long before they are enqueued together
BATCH_EVENTS = 500  # most events in one job

log = logging.getLogger("onionpost.events")


class Outage:
    """Whether this process can reach Redis; each change is logged once, whoever (events,
    pause poller) noticed it: one line per outage, not one per message."""

    def __init__(self) -> None:
        self._down = False
        self._up_since = 0.0  # time.monotonic() of the last success
        self._lock = threading.Lock()

    def down(self, error: BaseException, began: float) -> None:
        """An attempt that `began` (time.monotonic()) before someone else's success failed
        on the old outage (redis-py retries across a restart): that is not a new outage."""
        with self._lock:
            if began < self._up_since:
                return
            was_down, self._down = self._down, True
        if not was_down:
            log.warning("event=redis_down error=%s effect=events_dropped,pause_state_kept",
                        type(error).__name__)

    def up(self) -> None:
        with self._lock:
            was_down, self._down = self._down, False
            self._up_since = time.monotonic()
        if was_down:
            log.info("event=redis_up")


class EventPublisher:
    """Enqueues `messages_stored` jobs from a background thread, so that the SMTP session
    never waits on Redis. One job carries every event of a batch: the guardian recounts
    once per batch, not once per message (a flood is when that matters), and ingest pays
    for one rq job instead of one per message (~15% of its CPU at full speed). While Redis
    is down events are dropped (the disk is the source of truth and the guardian recounts
    it) and the outage is logged once, not per message."""

    def __init__(self, url: str, backlog: int = 10_000) -> None:
        self._url = url
        self._backlog = backlog
        self._pending: collections.deque[MessageStored] = collections.deque()
        self._stopping = threading.Event()
        self._wake = threading.Event()  # set by publish() only while the thread is idle
        self._idle = False
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self.outage = Outage()

    def start(self) -> None:
        self._thread.start()

    def publish(self, event: MessageStored) -> None:
        # An append, no lock and no wake-up: the thread collects every BATCH_SECONDS (a
        # wake-up per message cost ingest ~8% of its CPU under load). When Redis is far
        # behind, drop: the guardian's sweep sees the mail on disk anyway.
        if len(self._pending) < self._backlog:
            self._pending.append(event)
            if self._idle:  # the thread sleeps until told: once per burst, not per message
                self._idle = False
                self._wake.set()

    def stop(self, timeout: float = 3.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        events_queue = queue(EVENTS_QUEUE, connect(self._url))
        while True:
            stopping = self._stopping.wait(BATCH_SECONDS)
            if not self._pending and not stopping:
                self._sleep_until_published()
                stopping = self._stopping.is_set()
            while self._pending:
                count = min(len(self._pending), BATCH_EVENTS)
                self._send(events_queue,
                           [self._pending.popleft().to_dict() for _ in range(count)])
            if stopping:
                return

    def _sleep_until_published(self) -> None:
        """Nothing came for a whole batch: sleep until publish() or stop() wakes us (waking
        every BATCH_SECONDS for nothing cost an idle ingest 0.4 % of a core). The first
        event of a burst then goes at once; the rest are batched as before."""
        self._idle = True
        if not self._pending:  # publish() appends before it looks at _idle: no lost wake-up
            self._wake.wait()
        self._wake.clear()
        self._idle = False

    def _send(self, events_queue: Queue, events: list[dict[str, object]]) -> None:
        began = time.monotonic()
        try:
            events_queue.enqueue(MESSAGES_STORED_JOB, events, result_ttl=0,
                                 failure_ttl=86_400)
        except redis.RedisError as error:
            self.outage.down(error, began)
            return
        self.outage.up()
