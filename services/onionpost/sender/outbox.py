"""The outbox (ONIONPOST_SEND_QUEUE=on or `sendmail --queue`): messages whose destination was
down stay here until `onionpost send-queue` delivers them, bounces them or they expire.

On disk, under ONIONPOST_OUTBOX: new/<id>.eml (the cleaned message, never rewritten) and
new/<id>.json (envelope and retry state, replaced atomically). An entry exists once its
.json is in new/; both are written to tmp/, fsynced and renamed, then new/ is fsynced."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from onionpost.sender.delivery import Result

log = logging.getLogger("onionpost.sender")
FIRST_DELAY = 300.0   # 5 minutes after the first failed run ...
MAX_DELAY = 7200.0    # ... doubling up to 2 hours
ORPHAN_AGE = 3600.0   # a .eml with no .json this old is a crashed sendmail's leftover
MESSAGE, STATE, LOCK = ".eml", ".json", "lock"


@dataclass(frozen=True)
class Entry:
    id: str
    sender: str
    recipients: dict[str, list[str]]      # domain -> recipients still to deliver
    first_queued: float
    attempts: int
    next_attempt: float
    last_error: dict[str, str] = field(default_factory=dict)  # domain -> reason

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Entry:
        data = json.loads(raw)
        return cls(**data)


def backoff(attempts: int) -> float:
    """Seconds to wait after `attempts` failed runs: 5 min, 10, 20, ... at most 2 h."""
    return min(FIRST_DELAY * 2.0 ** max(attempts - 1, 0), MAX_DELAY)


def expired(entry: Entry, now: float, lifetime: float) -> bool:
    return now >= entry.first_queued + lifetime


def due(entry: Entry, now: float, flush: bool = False) -> bool:
    return flush or now >= entry.next_attempt


def domain_of(recipient: str) -> str:
    return recipient.rpartition("@")[2].lower()


def queueable(results: list[Result]) -> bool:
    """Something failed for now and nothing was held back: what is left can be queued."""
    statuses = {result.status for result in results}
    return "temporary" in statuses and "held" not in statuses


def new_entry(sender: str, results: list[Result], now: float) -> Entry:
    """The entry for a sendmail run's temporary failures (its first attempt)."""
    recipients: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    for result in results:
        if result.status == "temporary":
            domain = domain_of(result.recipient)
            recipients.setdefault(domain, []).append(result.recipient)
            errors.setdefault(domain, result.detail)
    return Entry(new_id(now), sender, recipients, now, 1, now + backoff(1), errors)


def new_id(now: float) -> str:
    """Sorts by time; random part from our own generator, nothing about the machine."""
    return f"{int(now)}-{secrets.token_hex(4)}"


def after_attempt(entry: Entry, results: list[Result],
                  now: float) -> tuple[Entry | None, list[Result]]:
    """Apply one delivery run: sent recipients leave for good, permanent failures are
    returned (to bounce), temporary ones stay with the next try pushed back. None when
    nobody is left."""
    failed = [result for result in results if result.status == "permanent"]
    recipients: dict[str, list[str]] = {}
    errors = dict(entry.last_error)
    for result in results:
        if result.status in ("temporary", "held"):
            domain = domain_of(result.recipient)
            recipients.setdefault(domain, []).append(result.recipient)
            if result.status == "temporary":
                errors[domain] = result.detail
    if not recipients:
        return None, failed
    attempts = entry.attempts + 1
    errors = {domain: text for domain, text in errors.items() if domain in recipients}
    return replace(entry, recipients=recipients, attempts=attempts,
                   next_attempt=now + backoff(attempts), last_error=errors), failed


def span(seconds: float) -> str:
    """A duration for people: '45 s', '5 min', '2 h 10 min', '3 d 4 h'."""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 60:
        return f"{minutes} min"
    if hours < 24:
        rest = minutes % 60
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    rest = hours % 24
    return f"{days} d {rest} h" if rest else f"{days} d"


def _read(path: Path) -> Entry | None:
    """An entry's state; None when it just left (a run removed it) or cannot be read (it
    stays on disk for a person to look at, and is logged)."""
    try:
        return Entry.from_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        log.warning("event=queue_entry_unreadable file=%s", path.name)
        return None


class BusyError(Exception):
    """Another send-queue run holds the outbox lock."""


class Outbox:
    """The queue on disk. Its methods import onionpost.maildir when they write: maildir
    pulls in asyncio, which `onionpost-sendmail` without --queue never needs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.new = root / "new"

    def add(self, entry: Entry, message: bytes) -> None:
        from onionpost import maildir  # see Outbox
        maildir.ensure(self.root)
        parts = [(f"{entry.id}{MESSAGE}", message), (f"{entry.id}{STATE}", entry.to_json())]
        for name, data in parts:
            maildir.publish(self.root, maildir.write_tmp(self.root, name, [data]))
        maildir.fsync_dir(self.new)

    def save(self, entry: Entry) -> None:
        """Replace the entry's state atomically (the message itself is never rewritten)."""
        from onionpost import maildir  # see Outbox
        tmp = maildir.write_tmp(self.root, f"{entry.id}{STATE}.{secrets.token_hex(4)}",
                                [entry.to_json()])
        os.rename(tmp, self.new / f"{entry.id}{STATE}")
        maildir.fsync_dir(self.new)

    def remove(self, entry_id: str) -> None:
        from onionpost import maildir  # see Outbox
        (self.new / f"{entry_id}{STATE}").unlink(missing_ok=True)
        (self.new / f"{entry_id}{MESSAGE}").unlink(missing_ok=True)
        maildir.fsync_dir(self.new)

    def entries(self) -> list[Entry]:
        if not self.new.is_dir():
            return []
        found = [entry for path in self.new.glob(f"*{STATE}") if (entry := _read(path))]
        return sorted(found, key=lambda entry: (entry.first_queued, entry.id))

    def message(self, entry_id: str) -> bytes:
        return (self.new / f"{entry_id}{MESSAGE}").read_bytes()

    def remove_orphans(self, now: float) -> int:
        """Messages whose state never arrived (sendmail died in between), once old."""
        removed = 0
        for path in self.new.glob(f"*{MESSAGE}") if self.new.is_dir() else ():
            state = path.with_suffix(STATE)
            with contextlib.suppress(FileNotFoundError):
                if not state.exists() and now - path.stat().st_mtime > ORPHAN_AGE:
                    path.unlink()
                    removed += 1
        return removed

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One send-queue run at a time (cron may start the next while one still sends)."""
        from onionpost import maildir  # see Outbox
        maildir.ensure(self.root)
        fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BusyError(str(self.root / LOCK)) from None
            yield
        finally:
            os.close(fd)
