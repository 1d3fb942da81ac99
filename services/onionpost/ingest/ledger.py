"""Admission decisions shared by all ingest processes: sessions, circuits, mailbox quota.

The state is a flat array of integers guarded by one lock, so that it can live in shared
memory (several ingest processes behind one port) or in a plain list (unit tests).
Every decision is taken and recorded under the lock: no check-then-write race.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Callable, MutableSequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from onionpost.ingest.replies import CIRCUIT_BUSY, CIRCUIT_RATE, MAILBOX_FULL, TOO_MANY_SESSIONS
from onionpost.maildir import Usage
from onionpost.quota import Quota

# Global cells.
SESSIONS, STORED_MSGS, STORED_BYTES, RESERVED_MSGS, RESERVED_BYTES = range(5)
_GLOBAL_CELLS = 5
# Per-circuit slot: hashed circuit, open sessions, rate tokens (x1000), last refill (ms).
KEY, ACTIVE, TOKENS, LAST_MS = range(4)
_SLOT = 4
BUCKET_SLOTS = 8


@dataclass(frozen=True)
class Limits:
    max_sessions: int
    circuit_max_sessions: int
    circuit_messages_per_minute: int
    quota: Quota


Refusal = str  # an SMTP reply explaining why something was refused (see replies.py)


def circuit_key(address: str, salt: bytes) -> int:
    """A keyed 63-bit hash of the circuit address: unpredictable, never 0."""
    digest = hashlib.blake2b(address.encode(), key=salt, digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 1) or 1


class Ledger:
    def __init__(self, limits: Limits, cells: MutableSequence[int],
                 lock: AbstractContextManager[object], buckets: int) -> None:
        self.limits = limits
        self._cells = cells
        self._lock = lock
        self._buckets = buckets

    @classmethod
    def shared(cls, limits: Limits) -> Ledger:
        """A ledger in shared memory: create before forking the ingest processes."""
        buckets = max(128, limits.max_sessions // 2)
        size = _GLOBAL_CELLS + buckets * BUCKET_SLOTS * _SLOT
        return cls(limits, multiprocessing.RawArray("q", size), multiprocessing.Lock(), buckets)

    @classmethod
    def local(cls, limits: Limits, buckets: int = 16) -> Ledger:
        import threading

        size = _GLOBAL_CELLS + buckets * BUCKET_SLOTS * _SLOT
        return cls(limits, [0] * size, threading.Lock(), buckets)

    # --- sessions -----------------------------------------------------------------
    def open_session(self, key: int, now_ms: int) -> Refusal | None:
        with self._lock:
            if self._cells[SESSIONS] >= self.limits.max_sessions:
                return TOO_MANY_SESSIONS
            slot = self._slot(key, now_ms)
            if slot is None or self._cells[slot + ACTIVE] >= self.limits.circuit_max_sessions:
                return CIRCUIT_BUSY
            self._cells[slot + ACTIVE] += 1
            self._cells[SESSIONS] += 1
            return None

    def close_session(self, key: int, now_ms: int) -> None:
        with self._lock:
            self._cells[SESSIONS] -= 1
            slot = self._slot(key, now_ms)
            if slot is not None and self._cells[slot + ACTIVE] > 0:
                self._cells[slot + ACTIVE] -= 1

    def sessions(self) -> int:
        return self._cells[SESSIONS]

    def take_message(self, key: int, now_ms: int) -> Refusal | None:
        """Spend one of the circuit's messages-per-minute tokens (token bucket)."""
        with self._lock:
            slot = self._slot(key, now_ms)
            if slot is None:
                return CIRCUIT_RATE
            self._refill(slot, now_ms)
            if self._cells[slot + TOKENS] < 1000:
                return CIRCUIT_RATE
            self._cells[slot + TOKENS] -= 1000
            return None

    # --- quota --------------------------------------------------------------------
    def has_room(self, size: int) -> Refusal | None:
        """Would a message of this size fit now? (An early answer; reserve() decides.)"""
        with self._lock:
            return None if self._fits(size) else MAILBOX_FULL

    def reserve(self, size: int) -> Refusal | None:
        with self._lock:
            if not self._fits(size):
                return MAILBOX_FULL
            self._cells[RESERVED_MSGS] += 1
            self._cells[RESERVED_BYTES] += size
            return None

    def release(self, size: int) -> None:
        """A reservation whose write failed."""
        with self._lock:
            self._cells[RESERVED_MSGS] -= 1
            self._cells[RESERVED_BYTES] -= size

    def commit(self, size: int, publish: Callable[[], object] | None = None) -> None:
        """Turn a reservation into stored mail. `publish` (the rename) runs under the lock
        so that a concurrent rescan sees each message exactly once."""
        with self._lock:
            if publish is not None:
                publish()
            self._cells[RESERVED_MSGS] -= 1
            self._cells[RESERVED_BYTES] -= size
            self._cells[STORED_MSGS] += 1
            self._cells[STORED_BYTES] += size

    def adjust(self, messages: int, size: int) -> None:
        """Mail that others (fetch, the owner) added or removed since we last looked."""
        with self._lock:
            self._cells[STORED_MSGS] = max(0, self._cells[STORED_MSGS] + messages)
            self._cells[STORED_BYTES] = max(0, self._cells[STORED_BYTES] + size)

    def rescan(self, scan: Callable[[], Usage]) -> Usage:
        """Replace the stored counters with a fresh scan of the disk (run under the lock)."""
        with self._lock:
            usage = scan()
            self._cells[STORED_MSGS] = usage.messages
            self._cells[STORED_BYTES] = usage.bytes
            return usage

    def usage(self) -> Usage:
        return Usage(self._cells[STORED_MSGS] + self._cells[RESERVED_MSGS],
                     self._cells[STORED_BYTES] + self._cells[RESERVED_BYTES])

    def _fits(self, size: int) -> bool:
        messages = self._cells[STORED_MSGS] + self._cells[RESERVED_MSGS] + 1
        total = self._cells[STORED_BYTES] + self._cells[RESERVED_BYTES] + size
        return self.limits.quota.allows(messages, total)

    # --- circuit table --------------------------------------------------------------
    def _slot(self, key: int, now_ms: int) -> int | None:
        """Index of the circuit's slot, claiming one in its bucket if new. None only when
        every slot of the bucket has open sessions (a full table: refuse, stay safe)."""
        cells = self._cells
        first = _GLOBAL_CELLS + (key % self._buckets) * BUCKET_SLOTS * _SLOT
        victim, victim_age = None, -1
        for slot in range(first, first + BUCKET_SLOTS * _SLOT, _SLOT):
            if cells[slot + KEY] == key:
                return slot
            if cells[slot + ACTIVE] == 0:
                age = now_ms - cells[slot + LAST_MS] if cells[slot + KEY] else 1 << 62
                if age > victim_age:
                    victim, victim_age = slot, age
        if victim is not None:
            cells[victim + KEY] = key
            cells[victim + ACTIVE] = 0
            cells[victim + TOKENS] = self.limits.circuit_messages_per_minute * 1000
            cells[victim + LAST_MS] = now_ms
        return victim

    def _refill(self, slot: int, now_ms: int) -> None:
        capacity = self.limits.circuit_messages_per_minute * 1000
        elapsed = max(0, now_ms - self._cells[slot + LAST_MS])
        # capacity tokens per 60 000 ms, in thousandths of a token
        gained = elapsed * capacity // 60_000
        if not gained:
            return
        tokens = min(capacity, self._cells[slot + TOKENS] + gained)
        self._cells[slot + TOKENS] = tokens
        # Carry the time not yet turned into tokens over (rounding must not starve a
        # circuit that asks often); a full bucket saves nothing up.
        self._cells[slot + LAST_MS] = (
            now_ms if tokens == capacity
            else self._cells[slot + LAST_MS] + gained * 60_000 // capacity)
