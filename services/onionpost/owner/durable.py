"""Key and config files written whole or not at all: temp file, fsync, rename, dir fsync."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_file(path: Path, text: str, mode: int = 0o600, like: Path | None = None) -> None:
    """Replace `path` with `text` atomically and durably. `like`: when we are root, the file
    gets that path's owner (tor refuses key files it cannot read)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)  # the umask may have narrowed it
            os.fsync(handle.fileno())
        if like is not None and os.geteuid() == 0:
            owner = like.stat()
            os.chown(temporary, owner.st_uid, owner.st_gid)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    sync_directory(path.parent)


def remove_file(path: Path) -> bool:
    """Unlink durably; False when it was not there."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    sync_directory(path.parent)
    return True


def sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
