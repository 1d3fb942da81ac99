"""What the Maildir holds (messages, bytes, recent arrivals) kept current from inotify events
on new/ and cur/, so that no process rescans a large mailbox on every change.

A full scan happens at start, whenever inotify cannot tell exactly (its queue overflowed, a
folder was removed or recreated, a name without ,S= came or went), and every
ONIONPOST_QUOTA_RESCAN_INTERVAL seconds as a reconciliation for what inotify never sees
(a file rewritten in place, a rename over another file, changes made through another
kernel on a network filesystem). A scan is exact even while the owner fetches: the events
that arrive during it are checked against the names it counted.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from inotify_simple import INotify, flags  # no hints shipped: ignore_missing_imports

from onionpost import maildir
from onionpost.maildir import Usage

_CHANGES = flags.CREATE | flags.DELETE | flags.MOVED_FROM | flags.MOVED_TO
_GONE = flags.DELETE_SELF | flags.MOVE_SELF
_COMING = flags.CREATE | flags.MOVED_TO
# Renames out of tmp/ not yet matched with their arrival in new/ (they come together: a
# bound, not a working size).
OWN_RENAMES = 4096


@dataclass
class Changes:
    """What the events read at once amount to."""

    messages: int = 0
    bytes: int = 0
    arrivals: Counter[int] = field(default_factory=Counter)  # delivery second -> net count
    rescan: bool = False  # something inotify cannot tell exactly: scan the disk


@dataclass
class Census:
    """A full scan: usage, arrival seconds since `since`, and the names it counted."""

    usage: Usage
    arrivals: Counter[int]
    names: set[str]


def census(box: Path, since: float) -> Census:
    """One walk of new/ and cur/ (the only O(mailbox) work here)."""
    count = total = 0
    arrivals: Counter[int] = Counter()
    names: set[str] = set()
    for message, size in maildir.stored(box):
        count += 1
        total += size
        names.add(f"{message.folder}/{message.name}")
        arrival = message.arrival()
        if arrival is not None and arrival > since:
            arrivals[arrival] += 1
    return Census(Usage(count, total), arrivals, names)


class MaildirWatch:
    """inotify watches on new/ and cur/ turned into Changes. With `own_deliveries`, renames
    from tmp/ into new/ are left out: ingest counts those itself as it makes them."""

    def __init__(self, box: Path, own_deliveries: bool = False) -> None:
        self.box = box
        self._inotify = INotify(nonblocking=True)
        self._folders: dict[int, str] = {}  # watch descriptor -> folder
        self._wanted = ("new", "cur", "tmp") if own_deliveries else ("new", "cur")
        self._own: dict[int, None] = {}  # cookies of renames out of tmp/, oldest first
        self.watch()

    def fileno(self) -> int:
        return int(self._inotify.fileno())

    def close(self) -> None:
        self._inotify.close()

    def watch(self) -> bool:
        """Watch every folder not watched yet; True when one was added (it may hold files
        nobody counted: scan)."""
        added = False
        for folder in set(self._wanted) - set(self._folders.values()):
            mask = (flags.MOVED_FROM if folder == "tmp" else _CHANGES) | _GONE | flags.ONLYDIR
            try:
                self._folders[self._inotify.add_watch(self.box / folder, mask)] = folder
            except OSError:  # not there (yet): a scan counts nothing there either
                continue
            added = True
        return added

    def read(self, timeout: float = 0, counted: set[str] | None = None) -> Changes:
        """The changes since the last read, waiting up to `timeout` seconds for the first.
        `counted`: the names a scan just counted; events are checked against them (and it
        is kept up to date), for the events that came while the scan ran."""
        changes = Changes()
        for event in self._inotify.read(timeout=round(timeout * 1000)):
            self._apply(event.wd, event.mask, event.cookie, event.name, changes, counted)
        if self.watch():
            changes.rescan = True
        return changes

    def _apply(self, wd: int, mask: int, cookie: int, name: str, changes: Changes,
               counted: set[str] | None) -> None:
        if mask & flags.Q_OVERFLOW:
            changes.rescan = True
            return
        folder = self._folders.get(wd)
        if folder is None:
            return
        if mask & (_GONE | flags.IGNORED):  # removed or moved away: watch it again by path
            del self._folders[wd]
            with contextlib.suppress(OSError):
                self._inotify.rm_watch(wd)
            changes.rescan = True
            return
        if mask & flags.ISDIR or not name or name.startswith("."):
            return
        if folder == "tmp":
            self._own[cookie] = None
            if len(self._own) > OWN_RENAMES:
                del self._own[next(iter(self._own))]
            return
        coming = bool(mask & _COMING)
        if mask & flags.MOVED_TO and cookie in self._own:
            del self._own[cookie]
            return  # ingest's own delivery: already counted
        if counted is not None and not _recount(counted, f"{folder}/{name}", coming):
            return
        size = maildir.size_in_name(name)
        if size is None:  # a foreign name: its size is gone with it, or not final yet
            changes.rescan = True
            return
        sign = 1 if coming else -1
        changes.messages += sign
        changes.bytes += sign * size
        arrival = maildir.arrival_in_name(name)
        if arrival is not None:
            changes.arrivals[arrival] += sign


def _recount(counted: set[str], key: str, coming: bool) -> bool:
    """Whether an event that may predate a scan changes what the scan counted."""
    if coming:
        if key in counted:
            return False
        counted.add(key)
        return True
    if key not in counted:
        return False
    counted.discard(key)
    return True


class Tally:
    """The usage and recent arrivals of one Maildir, for one process (the guardian): a
    scan, then the watch's changes applied to it on each refresh."""

    def __init__(self, box: Path, window: int, reconcile_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.box = box
        self.window = window
        self.reconcile_seconds = reconcile_seconds
        self.usage = Usage(0, 0)
        self.scans = 0
        self._clock = clock
        self._arrivals: Counter[int] = Counter()
        self._watch: MaildirWatch | None = None
        self._next_scan = 0.0

    def refresh(self) -> Usage:
        """Bring the counts up to date: O(changes since the last refresh), or a scan when
        inotify could not tell or the reconciliation is due."""
        if self._watch is None:
            self._watch = MaildirWatch(self.box)
            self._rescan(self._watch)
            return self.usage
        changes = self._watch.read()
        if changes.rescan or self._clock() >= self._next_scan:
            self._rescan(self._watch)
            return self.usage
        self._add(changes)
        return self.usage

    def recent(self, now: float) -> int:
        """Messages present that arrived within the window before now (by their names)."""
        since = now - self.window
        for second in [second for second in self._arrivals if second <= since]:
            del self._arrivals[second]  # can never count again: the window moves on
        return sum(self._arrivals.values())

    def _rescan(self, watch: MaildirWatch) -> None:
        watch.read()  # what happened before the scan is in the scan
        found = census(self.box, time.time() - self.window)
        self.usage, self._arrivals = found.usage, found.arrivals
        changes = watch.read(counted=found.names)
        self._add(changes)
        self.scans += 1
        # inotify lost track during the scan (an overflow in a flood): scan again next time
        self._next_scan = 0.0 if changes.rescan else self._clock() + self.reconcile_seconds

    def _add(self, changes: Changes) -> None:
        self.usage = Usage(max(0, self.usage.messages + changes.messages),
                           max(0, self.usage.bytes + changes.bytes))
        since = time.time() - self.window
        for second, count in changes.arrivals.items():
            if second in self._arrivals or (count > 0 and second > since):
                self._arrivals[second] += count
                if self._arrivals[second] <= 0:
                    del self._arrivals[second]
