"""Ingest's durable delivery into the Maildir: a message written to tmp/, synced, renamed into
new/, new/ synced, with group commit (one syncfs and one directory fsync for every message
that arrives while the previous group commits) or an fsync per file.

The interface ingest uses: `delivery(mode, maildir).deliver(name, content, commit)`, the
two errors it raises (NotStoredError, NameNotDurableError) and what a message's content
may be (`Content`: parts in memory, or a file already `Written` to tmp/).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from onionpost import maildir as maildir_files

Item = TypeVar("Item")
# Messages up to this size are written from the event loop (see write_tmp_async).
INLINE_WRITE_LIMIT = 256 * 1024


@dataclass(frozen=True)
class Written:
    """A message already written whole to tmp/tmp_name and closed, not yet synced."""

    tmp_name: str


# What a delivery stores: the parts of a message to write, or one already in tmp/.
Content = list[bytes] | Written


async def write_tmp_async(maildir: Path, name: str, parts: list[bytes]) -> Path:
    """write_tmp for the event loop. A small message goes to the page cache inline (tens of
    microseconds) and only its fsync, which waits for the disk, runs in a thread: one GIL
    hand-off per message instead of one per system call, which under load is what limits
    throughput. Large messages are written in a thread too."""
    if sum(map(len, parts)) > INLINE_WRITE_LIMIT:
        return await asyncio.to_thread(maildir_files.write_tmp, maildir, name, parts)
    path = maildir / "tmp" / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        maildir_files.write_all(fd, parts)
        await FSYNC.fsync(fd)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    return path


class FsyncThreads:
    """Threads that fsync for the event loop: a fraction of run_in_executor's cost per call
    (no concurrent.futures Future, work item and chained asyncio Future), and enough of
    them that every message in flight has its fsync running: concurrent fsyncs share the
    filesystem journal's commits. Started on first use in each process (fork-safe)."""

    def __init__(self, threads: int) -> None:
        self._count = threads
        self._jobs: queue.SimpleQueue[tuple[int, asyncio.Future[None]]] = queue.SimpleQueue()
        self._pid = 0

    async def fsync(self, fd: int) -> None:
        if self._pid != os.getpid():
            self._start()
        future = asyncio.get_running_loop().create_future()
        self._jobs.put((fd, future))
        await future

    def _start(self) -> None:
        self._pid = os.getpid()
        self._jobs = queue.SimpleQueue()
        for number in range(self._count):
            threading.Thread(target=self._work, name=f"fsync-{number}", daemon=True).start()

    def _work(self) -> None:
        while True:
            fd, future = self._jobs.get()
            error = _failure(os.fsync, fd)
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                future.get_loop().call_soon_threadsafe(_settle, future, error)


def _settle(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():  # cancelled meanwhile
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class GroupCommit(Generic[Item]):
    """Group commit: callers that submit while a group is being committed wait and are all
    served by the next group, in one thread: one hand-off (and one flush) per group, not
    per call. `commit_group` takes the group's items and returns an error or None for each."""

    def __init__(self, commit_group: Callable[[list[Item]], list[Exception | None]]) -> None:
        self._commit_group = commit_group
        self._pending: list[tuple[Item, asyncio.Future[None]]] = []
        self._running = False

    async def submit(self, item: Item) -> None:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._run())
        await future

    async def _run(self) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending, []
                try:
                    outcomes = await asyncio.to_thread(
                        self._commit_group, [item for item, _ in group])
                except Exception as error:  # a bug: no caller may wait for ever
                    outcomes = [error] * len(group)
                for (_, future), outcome in zip(group, outcomes, strict=True):
                    _settle(future, outcome)
        finally:
            self._running = False


class DirectorySync:
    """Group commit of renames: one fsync of the directory serves every rename made before
    it started."""

    def __init__(self, directory: Path) -> None:
        self._group: GroupCommit[None] = GroupCommit(
            lambda items: [_failure(maildir_files.fsync_dir, directory)] * len(items))

    async def sync(self) -> None:
        await self._group.submit(None)


def _failure(action: Callable[..., None], *args: object) -> OSError | None:
    try:
        action(*args)
    except OSError as error:
        return error
    return None


_LIBC = ctypes.CDLL(None, use_errno=True)


class NotStoredError(Exception):
    """The message did not reach new/ and its tmp/ file is gone: the sender must retry.
    `stage` says what failed: 'write' (writing or syncing the data) or 'publish' (the rename)."""

    def __init__(self, stage: str, error: OSError) -> None:
        super().__init__(stage, error)
        self.stage, self.error = stage, error


class NameNotDurableError(Exception):
    """The message is in new/, but fsync(new/) failed: a crash could still lose its name."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


# Given the rename of tmp/name into new/name, runs it (ingest: under its quota lock).
Commit = Callable[[Callable[[], object]], None]


class FileDelivery:
    """ONIONPOST_FSYNC=file: the file's fsync on the FsyncThreads, the rename, then a grouped
    fsync of new/. Each message learns its own fate; no other program's data is waited for."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self._directory = DirectorySync(maildir / "new")

    async def deliver(self, name: str, content: Content, commit: Commit) -> None:
        try:
            tmp_path = await self._write(name, content)
        except OSError as error:
            raise NotStoredError("write", error) from error
        try:
            commit(functools.partial(maildir_files.publish, self.maildir, tmp_path, name))
        except OSError as error:
            tmp_path.unlink(missing_ok=True)
            raise NotStoredError("publish", error) from error
        try:
            await self._directory.sync()
        except OSError as error:
            raise NameNotDurableError(error) from error

    async def _write(self, name: str, content: Content) -> Path:
        """The message in tmp/, fsynced; on failure its file is gone."""
        if not isinstance(content, Written):
            return await write_tmp_async(self.maildir, name, content)
        tmp_path = self.maildir / "tmp" / content.tmp_name
        try:
            fd = os.open(tmp_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                await FSYNC.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            maildir_files.remove(tmp_path)
            raise
        return tmp_path


class GroupDelivery:
    """ONIONPOST_FSYNC=group: group commit of the whole durable path. Messages that arrive
    while the previous group commits form the next group, and one thread runs it: their
    files written into tmp/, one syncfs(2) of the Maildir's filesystem for their data, their
    renames into new/, one fsync of new/. One thread hand-off per group, and the event loop
    never waits on the filesystem (creating a file can wait for a journal commit).

    syncfs reports write-back errors (Linux >= 5.8) seen since its descriptor was opened,
    once per open file: each process opens its own before it writes anything, so every
    error reaches the group it may have hit. A failed syncfs fails the whole group (each
    sender retries): which file lost data is unknown. On a shared filesystem a group also
    waits for other programs' dirty data (then choose 'file').

    Paths are plain strings here: pathlib costs microseconds per message on the hot path."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self._tmp, self._new = f"{maildir}/tmp/", f"{maildir}/new/"
        self._group: GroupCommit[tuple[str, Content, Commit]] = GroupCommit(self._commit)
        self._filesystem = -1  # opened before the first write (ingest: one per worker)

    async def deliver(self, name: str, content: Content, commit: Commit) -> None:
        if self._filesystem < 0:
            self._filesystem = os.open(self._tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        await self._group.submit((name, content, commit))

    def _commit(self, group: list[tuple[str, Content, Commit]]) -> list[Exception | None]:
        outcomes: list[Exception | None] = []
        sources = []  # each message's file in tmp/
        for name, content, _ in group:
            if isinstance(content, Written):  # spilled while it arrived: only the sync left
                sources.append(self._tmp + content.tmp_name)
                outcomes.append(None)
                continue
            sources.append(self._tmp + name)
            failed = _failure(maildir_files.write_new, self._tmp + name, content, False)
            outcomes.append(None if failed is None else NotStoredError("write", failed))
        synced = _failure(syncfs, self._filesystem)
        if synced is not None:
            for source in sources:
                maildir_files.remove(source)
            return [NotStoredError("write", synced)] * len(group)
        for number, (name, _, commit) in enumerate(group):
            if outcomes[number] is not None:
                continue
            source = sources[number]
            failed = _failure(commit, functools.partial(os.rename, source, self._new + name))
            if failed is not None:
                maildir_files.remove(source)
                outcomes[number] = NotStoredError("publish", failed)
        if None in outcomes:
            directory = _failure(maildir_files.fsync_dir, self._new)
            if directory is not None:
                outcomes = [NameNotDurableError(directory) if outcome is None else outcome
                            for outcome in outcomes]
        return outcomes


def syncfs(fd: int) -> None:
    if _LIBC.syncfs(fd) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


Delivery = FileDelivery | GroupDelivery


def delivery(mode: str, maildir: Path) -> Delivery:
    """ONIONPOST_FSYNC: 'group' (syncfs group commit) or 'file' (an fsync per message)."""
    return GroupDelivery(maildir) if mode == "group" else FileDelivery(maildir)


FSYNC = FsyncThreads(32)
