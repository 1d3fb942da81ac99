"""What fetch tells the owner: progress, one summary line, and server text made safe to show."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TextIO

REPLACEMENT = "\ufffd"


def printable_lines(text: str) -> list[str]:
    """Text from the server or ssh as lines a terminal shows as they are, never obeys.

    Every line break ends a line (CR too, so nothing overwrites what came before); a tab
    becomes a space; any other character that is not printable (ESC, so no escape sequence
    starts; BEL; C1 controls; bidi overrides and isolates; other format characters) becomes
    U+FFFD, so the owner sees that something was there. Blank lines are dropped.
    """
    lines = (line.replace("\t", " ") for line in text.splitlines())
    cleaned = ("".join(c if c.isprintable() else REPLACEMENT for c in line) for line in lines)
    return [line.strip() for line in cleaned if line.strip()]


def megabytes(count: int) -> str:
    return f"{count / 1_000_000:.1f} MB"


@dataclass
class Outcome:
    fetched: int = 0
    fetched_bytes: int = 0
    removed: int = 0        # server copies deleted
    gone: int = 0           # listed, then gone before we got to them
    held_back: int = 0      # --limit
    skipped: int = 0        # names fetch does not touch (not Maildir-shaped), left there
    kept: bool = False
    clashes: list[str] = field(default_factory=list)  # a local file has the name: left there


def summary(outcome: Outcome, dry_run: bool = False) -> str:
    """`fetched 37 messages, 12.4 MB` and, when there is more to say, what else happened."""
    verb = "would fetch" if dry_run else "fetched"
    noun = "message" if outcome.fetched == 1 else "messages"
    parts = [f"{verb} {outcome.fetched} {noun}, {megabytes(outcome.fetched_bytes)}"]
    if outcome.kept:
        parts.append("left on the server (--keep)")
    if outcome.removed:
        parts.append(f"{'would remove' if dry_run else 'removed'} {outcome.removed} "
                     "already fetched from the server")
    if outcome.held_back:
        parts.append(f"{outcome.held_back} more waiting on the server (--limit)")
    if outcome.skipped:
        parts.append(f"{outcome.skipped} files with unusual names left on the server")
    if outcome.gone:
        parts.append(f"{outcome.gone} vanished from the server meanwhile")
    if outcome.clashes:
        parts.append(f"{len(outcome.clashes)} left on the server: a local file has the name")
    return "; ".join(parts)


def clash_warning(clashes: list[str]) -> str:
    """What the owner can do about messages whose names a local file already has."""
    names = ", ".join(clashes[:3]) + (", …" if len(clashes) > 3 else "")
    return (f"kept the local files named {names}; the server's messages of the same names "
            "stay there: give the local files other names (e.g. add .1), then run again")


def bar(done: int, total: int, done_bytes: int, total_bytes: int, width: int = 30) -> str:
    filled = width * done_bytes // total_bytes if total_bytes else width
    return (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} messages, "
            f"{megabytes(done_bytes)} of {megabytes(total_bytes)}")


class ProgressBar:
    """Redraws at most ten times a second, and only on a terminal (silent under cron)."""

    def __init__(self, stream: TextIO, total: int, total_bytes: int) -> None:
        self._stream = stream
        self._on = stream.isatty() and total > 0
        self._total, self._total_bytes = total, total_bytes
        self._done = self._done_bytes = 0
        self._drawn = 0.0

    def advance(self, size: int) -> None:
        self._done += 1
        self._done_bytes += size
        now = time.monotonic()
        if self._on and (now - self._drawn > 0.1 or self._done == self._total):
            self._drawn = now
            line = bar(self._done, self._total, self._done_bytes, self._total_bytes)
            self._stream.write("\r" + line)
            self._stream.flush()

    def close(self) -> None:
        if self._on and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
