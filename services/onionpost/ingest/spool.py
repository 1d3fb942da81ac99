"""One message as DATA brings it: in memory while small, then in a tmp/ file that grows block
by block, so that a session never holds more than a bounded buffer of its message."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from concurrent.futures import Executor

from onionpost import maildir
from onionpost.ingest import delivery

# A message whose content passes this is written to tmp/ as it arrives; a smaller one stays
# in memory until its end and is written by the group commit in one go (the fast path).
SPILL_SIZE = 64 * 1024


class Spool:
    """The bytes of one stored file, our trace headers first. The file's writes run on
    `threads`, one at a time for a spool: a write to the page cache waits whenever the
    kernel throttles writers with too much dirty memory, which many big messages at once
    cause, and the event loop must not wait with them. `_lock` orders a discard after a
    write still running, so that a file is never created or written after its removal."""

    def __init__(self, tmp_dir: str, queue_id: str, header: bytes, threads: Executor) -> None:
        self.queue_id = queue_id
        self.size = len(header)  # of the stored file: exact, for its ,S= and the quota
        self.tmp_name: str | None = None  # once spilled
        self.error: OSError | None = None  # a write failed: the message cannot be stored
        self._tail = [header]  # what is not in the file yet
        self._path = ""
        self._tmp_dir = tmp_dir
        self._threads = threads
        self._fd = -1
        self._lock = threading.Lock()
        self._removed = False
        self._owned = True  # until the delivery takes the file over

    def add(self, parts: list[bytes]) -> None:
        """More content, kept in memory (the end of a message, or a small one)."""
        self._tail += parts
        self.size += sum(map(len, parts))

    async def spill(self, parts: list[bytes]) -> None:
        """More content, written to the file now (created on first use)."""
        self.add(parts)
        if self.error is not None or self._removed:
            self._tail = []  # counted, not kept: the message is refused at its end
            return
        if self.tmp_name is None:
            self.tmp_name = maildir.tmp_name(self.queue_id)
            self._path = self._tmp_dir + self.tmp_name
        tail, self._tail = self._tail, []
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._threads, self._write, tail)
        except OSError as error:
            self.error = error
            self.discard()

    async def seal(self) -> None:
        """Bring the message into its stored form (encryption at rest: ingest/sealing.py)."""

    def hand_over(self) -> None:
        """The delivery owns the tmp/ file from now on: discard() leaves it alone."""
        self._owned = False

    async def finish(self) -> delivery.Content:
        """The whole message for the delivery (after hand_over): the parts of a small one,
        or the spilled file written to its end and closed. Raises OSError (the file
        removed) if the last write fails."""
        tail, self._tail = self._tail, []
        if self.tmp_name is None:
            return tail
        try:
            await asyncio.get_running_loop().run_in_executor(self._threads, self._close, tail)
        except BaseException:
            self._owned = True  # nobody else will remove it
            self.discard()
            raise
        return delivery.Written(self.tmp_name)

    def discard(self) -> None:
        """Drop the message: remove its tmp/ file, after a write still running. Idempotent;
        nothing once the delivery owns the file."""
        if not self._owned or self._removed:
            return
        self._removed, self._tail = True, []
        if self.tmp_name is not None:
            self._threads.submit(self._remove)

    # --- in the spool's threads ---------------------------------------------------------
    def _write(self, parts: list[bytes]) -> None:
        with self._lock:
            if self._removed:
                return
            if self._fd < 0:
                self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                                   | os.O_CLOEXEC, 0o600)
            _write_all(self._fd, parts)

    def _close(self, parts: list[bytes]) -> None:
        self._write(parts)
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _remove(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)


def _write_all(fd: int, parts: list[bytes]) -> None:
    for part in parts:
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view):]
