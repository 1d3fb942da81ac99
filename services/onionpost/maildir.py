"""The Maildir on disk: its names, the one walk of its messages (new/ and cur/), usage scans,
tmp/ -> new/ publication, and the one atomic durable writer of private files.

Ingest's group-commit delivery lives in ingest/delivery.py; usage kept current between
scans, in usage.py."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

# A fixed host label: the Maildir convention puts the hostname here, we never do.
HOST_LABEL = "onionpost"
SUBDIRS = ("tmp", "new", "cur")
_SIZE_IN_NAME = re.compile(r",S=(\d+)")
# Maildir names start with the delivery time in seconds ("1732540000.M123R4.host,S=9").
_ARRIVAL = re.compile(r"^(\d{9,11})\.")
FOLDERS = ("new", "cur")  # what counts as stored mail; tmp/ is work in progress


@dataclass(frozen=True)
class Usage:
    messages: int
    bytes: int


def ensure(maildir: Path) -> None:
    for sub in SUBDIRS:
        (maildir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)


def new_queue_id() -> str:
    return secrets.token_hex(6).upper()


def file_name(queue_id: str, size: int) -> str:
    """Only our clock and a random id: no attacker text, no hostname. ,S= saves a stat."""
    now = time.time()
    seconds = int(now)
    micros = int((now - seconds) * 1_000_000)
    return f"{seconds}.M{micros}R{queue_id}.{HOST_LABEL},S={size}"


def tmp_name(queue_id: str) -> str:
    """The tmp/ name of a message written while it arrives (its size is not known yet)."""
    return file_name(queue_id, 0).partition(",")[0]


def size_of(path: Path | os.DirEntry[str]) -> int:
    """Size from the ,S= tag (no stat), falling back to stat for foreign names."""
    size = size_in_name(path.name)
    return path.stat().st_size if size is None else size


def size_in_name(name: str) -> int | None:
    """The size a ,S= tag gives, or None for a name without one."""
    match = _SIZE_IN_NAME.search(name)
    return int(match.group(1)) if match else None


def arrival_in_name(name: str) -> int | None:
    """The delivery second a Maildir name starts with, or None."""
    match = _ARRIVAL.match(name)
    return int(match.group(1)) if match else None


class Message(NamedTuple):
    """One entry of new/ or cur/ as the walk finds it (a NamedTuple: a walk of 100,000
    messages makes 100,000 of them)."""

    folder: str  # "new" or "cur"
    entry: os.DirEntry[str]

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def path(self) -> str:
        return self.entry.path

    @property
    def unique(self) -> str:
        """The name without the flags a reader adds in cur/ (":2,S")."""
        return self.entry.name.partition(":")[0]

    def is_file(self) -> bool:
        """A regular file (a symlink is never followed)."""
        return self.entry.is_file(follow_symlinks=False)

    def size(self) -> int:
        """From the ,S= tag (no stat), else a stat. FileNotFoundError: gone meanwhile."""
        return size_of(self.entry)

    def arrival(self) -> int | None:
        return arrival_in_name(self.entry.name)


def messages(maildir: Path, folders: tuple[str, ...] = FOLDERS) -> Iterator[Message]:
    """Every entry of new/ then cur/ but dot files, in directory order; a missing folder
    holds nothing. Callers choose what else to skip (Message.is_file)."""
    for folder in folders:
        try:
            entries = os.scandir(maildir / folder)
        except FileNotFoundError:
            continue
        with entries:
            for entry in entries:
                if not entry.name.startswith("."):
                    yield Message(folder, entry)


def stored(maildir: Path) -> Iterator[tuple[Message, int]]:
    """Each message that counts against the quota (a regular file in new/ or cur/) and its
    size."""
    for message in messages(maildir):
        if not message.is_file():
            continue
        try:
            yield message, message.size()
        except FileNotFoundError:  # fetched away while we looked
            continue


def scan(maildir: Path) -> Usage:
    """Messages and bytes in new/ and cur/ (what counts against the quota)."""
    count = total = 0
    for _, size in stored(maildir):
        count += 1
        total += size
    return Usage(count, total)


def clean_tmp(maildir: Path) -> int:
    """Remove leftovers of a crash from tmp/ (only ingest writes there). Returns the count."""
    removed = 0
    for entry in os.scandir(maildir / "tmp"):
        if entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)
            removed += 1
    return removed


def write_tmp(maildir: Path, name: str, parts: list[bytes]) -> Path:
    """Write parts to tmp/name and fsync it. On any error the file is removed."""
    path = maildir / "tmp" / name
    write_new(path, parts, fsync=True)
    return path


def write_new(path: str | Path, parts: list[bytes], fsync: bool) -> None:
    """Create path (never over an existing file) with parts; on any error remove it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        write_all(fd, parts)
        if fsync:
            os.fsync(fd)
    except BaseException:
        remove(path)
        raise
    finally:
        os.close(fd)


def remove(path: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def remove_durably(path: Path) -> bool:
    """Unlink, and fsync the directory; False when it was not there."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def write_all(fd: int, parts: list[bytes]) -> None:
    view = memoryview(b"".join(parts))
    while view:
        view = view[os.write(fd, view):]


def publish(maildir: Path, tmp_path: Path, name: str | None = None) -> Path:
    """rename(2) tmp/x to new/name (name: x's by default): atomic, the message appears
    whole or not at all."""
    target = maildir / "new" / (name or tmp_path.name)
    os.rename(tmp_path, target)
    return target


def fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)




def write_private(path: Path, data: bytes, mode: int = 0o600, like: Path | None = None) -> None:
    """Replace path with data, whole or not at all, and durably: written to a temporary
    name beside it (created afresh, never through a symlink), fsynced, renamed over path,
    and the directory fsynced. A crash leaves the old file or the new one, never a mix;
    its temporary leftover is removed by the next write. `like`: run as root, the file gets
    that path's owner (tor refuses key files it does not own)."""
    temporary = path.with_name(f".{path.name}.tmp")
    remove(temporary)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                 | os.O_CLOEXEC, mode)
    try:
        try:
            write_all(fd, [data])
            os.fchmod(fd, mode)  # the umask may have narrowed it
            if like is not None and os.geteuid() == 0:
                owner = like.stat()
                os.fchown(fd, owner.st_uid, owner.st_gid)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, path)
    except BaseException:
        remove(temporary)
        raise
    fsync_dir(path.parent)
