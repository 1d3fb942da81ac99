"""The owner's local Maildir: durable delivery of fetched messages and the fetch record.

A fetched message keeps the server's file name (new/<unique>, or cur/<unique>:2,<flags>),
so a message that is here already is recognised by its unique name, wherever the mail
reader has moved it between new/ and cur/ since.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from onionpost.fetch.protocol import Entry, check_name
from onionpost.maildir import ensure, fsync_dir, messages, write_private

LOCK_NAME = ".onionpost-fetch.lock"
RECORD_NAME = ".onionpost-fetched"
TMP_SUFFIX = ".onionpost-fetch"
FSYNC_THREADS = 64  # many fsyncs at once: the filesystem merges them


class BusyError(Exception):
    """Another fetch into the same Maildir is running."""


class MismatchError(Exception):
    """What arrived is not what the server said it sent."""


@dataclass(frozen=True)
class Fingerprint:
    size: int
    digest: str


def sha256_file(path: Path) -> Fingerprint:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            digest.update(chunk)
    return Fingerprint(path.stat().st_size, digest.hexdigest())


class LocalMaildir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock_fd: int | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._dirty: set[str] = set()

    def create(self) -> None:
        ensure(self.root)

    def lock(self) -> None:
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BusyError(f"another fetch into {self.root} is running") from None
        self._lock_fd = fd

    def close(self) -> None:
        """Release the lock and the fsync threads."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def in_background(self, work: Callable[[], None]) -> Future[None]:
        """Run work on one of the fsync threads: fsyncs of many files at once are merged by
        the filesystem into few journal commits, and overlap with receiving the next ones."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(FSYNC_THREADS, thread_name_prefix="fsync")
        return self._pool.submit(work)

    def remove_leftovers(self) -> int:
        """Our own half-written files from a run that was killed (only ours: tmp/ is shared)."""
        removed = 0
        for path in (self.root / "tmp").glob(f"*{TMP_SUFFIX}"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    def present(self) -> dict[str, Path]:
        """unique name -> file, for every message in new/ and cur/."""
        return {message.unique: Path(message.path) for message in messages(self.root)}

    def start(self, entry: Entry) -> Delivery:
        check_name(entry.name)  # the name decides the path: checked here too, whoever called
        return Delivery(self, entry)

    def commit(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Wait until every verified file is fsynced, link each into place, then fsync the
        directories. Only after this may the server delete them. Returns the deliveries
        that were not placed because a local file already has their name (kept as it is)."""
        try:
            for delivery in deliveries:
                delivery.wait_durable()
            clashes = [delivery for delivery in deliveries if not delivery.publish()]
        except BaseException:
            for delivery in deliveries:
                delivery.abort()
            raise
        self.sync()
        return clashes

    def published(self, entry: Entry) -> None:
        self._dirty.add(entry.name.partition("/")[0])

    def sync(self) -> None:
        """Make every link since the last sync durable (one fsync per directory)."""
        for sub in sorted(self._dirty):
            fsync_dir(self.root / sub)
        self._dirty.clear()


class Delivery:
    """One message on its way: tmp/ -> write -> verify -> fsync -> link into new/ or cur/."""

    def __init__(self, maildir: LocalMaildir, entry: Entry) -> None:
        self._maildir = maildir
        self.entry = entry
        self._tmp = maildir.root / "tmp" / (entry.unique + TMP_SUFFIX)
        self._target = maildir.root / entry.name
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600)
        self._file = os.fdopen(fd, "wb", buffering=1 << 16)
        self._digest = hashlib.sha256()
        self._size = 0
        self._durable: Future[None] | None = None

    def write(self, chunk: bytes) -> None:
        self._digest.update(chunk)
        self._size += len(chunk)
        self._file.write(chunk)

    @property
    def digest(self) -> str:
        return self._digest.hexdigest()

    def verify(self, claimed_digest: str) -> Fingerprint:
        """Compare with the server's size and hash; a mismatch removes the file."""
        got = Fingerprint(self._size, self.digest)
        if got != Fingerprint(self.entry.size, claimed_digest):
            self.abort()
            raise MismatchError(f"{self.entry.name}: received {got.size} bytes with sha256 "
                                f"{got.digest[:12]}…, the server announced {self.entry.size} "
                                f"bytes with {claimed_digest[:12]}…")
        self._file.flush()
        self._durable = self._maildir.in_background(self._make_durable)
        return got

    def _make_durable(self) -> None:
        os.fsync(self._file.fileno())
        self._file.close()

    def wait_durable(self) -> None:
        if self._durable is None:
            raise RuntimeError(f"{self.entry.name} was not verified")
        self._durable.result()

    def publish(self) -> bool:
        """Link into place, never over a file that is there (rename would replace it: on a
        case-insensitive disk `new/abc` is the owner's `new/ABC`). False, and our copy
        dropped, when the name is taken."""
        try:
            os.link(self._tmp, self._target)
        except FileExistsError:
            self._tmp.unlink()
            return False
        self._tmp.unlink()
        self._maildir.published(self.entry)
        return True

    def abort(self) -> None:
        if self._durable is not None:
            with contextlib.suppress(Exception):
                self._durable.result()  # never close the file under a running fsync
        self._file.close()
        self._tmp.unlink(missing_ok=True)


class FetchRecord:
    """What this Maildir has fetched and the server may still hold: `unique size sha256`
    lines, appended durably before any delete is asked for, pruned to the server's list."""

    def __init__(self, maildir_root: Path) -> None:
        self.path = maildir_root / RECORD_NAME

    def load(self) -> dict[str, Fingerprint]:
        known: dict[str, Fingerprint] = {}
        with contextlib.suppress(FileNotFoundError), self.path.open() as handle:
            for line in handle:
                words = line.split()
                if len(words) == 3 and words[1].isdigit() and len(words[2]) == 64:  # torn: skip
                    known[words[0]] = Fingerprint(int(words[1]), words[2])
        return known

    def append(self, fetched: dict[str, Fingerprint]) -> None:
        if fetched:
            _write_synced(self.path, _lines(fetched), os.O_APPEND)

    def prune(self, still_on_server: set[str]) -> None:
        """Forget messages the server no longer has (atomic rewrite)."""
        known = self.load()
        kept = {unique: fp for unique, fp in known.items() if unique in still_on_server}
        if len(kept) == len(known):
            return
        write_private(self.path, _lines(kept))


def _lines(records: dict[str, Fingerprint]) -> bytes:
    return "".join(f"{unique} {fp.size} {fp.digest}\n" for unique, fp in records.items()).encode()


def _write_synced(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | mode, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
