"""`onionpost fetch-serve`: the server side of fetch, run by sshd as a forced command.

It speaks the protocol in protocol.py on stdin/stdout, reads and deletes only inside one
Maildir's new/ and cur/, and never follows a symlink.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from onionpost import maildir
from onionpost.exits import EX_IOERR, EX_OK, EX_PROTOCOL, EX_UNAVAILABLE
from onionpost.fetch import protocol
from onionpost.fetch.protocol import Entry, ProtocolError
from onionpost.settings import Settings

CHUNK = 1 << 16


def list_maildir(box: Path) -> tuple[list[Entry], int]:
    """Every message in new/ then cur/, oldest name first; and how many names we skip.
    Sizes from stat, not from ,S=: DEL compares them with the file itself."""
    found: list[Entry] = []
    skipped = 0
    for message in maildir.messages(box):
        name = f"{message.folder}/{message.name}"
        if not protocol.is_valid_name(name) or not message.is_file():
            skipped += 1
            continue
        try:
            found.append(Entry(name, message.entry.stat(follow_symlinks=False).st_size))
        except FileNotFoundError:
            continue
    order = {folder: number for number, folder in enumerate(maildir.FOLDERS)}
    found.sort(key=lambda entry: (order[entry.name.partition("/")[0]], entry.name))
    return found, skipped


def _sha256(fd: int, size: int, copy_to: Callable[[bytes], object] | None = None) -> str:
    digest = hashlib.sha256()
    for chunk in _chunks(fd, size):
        digest.update(chunk)
        if copy_to is not None:
            copy_to(chunk)
    return digest.hexdigest()


def _chunks(fd: int, size: int) -> Iterator[bytes]:
    left = size
    while left:
        chunk = os.read(fd, min(CHUNK, left))
        if not chunk:
            raise OSError(f"message shrank while being sent ({left} bytes short)")
        left -= len(chunk)
        yield chunk


class Server:
    """Answers requests in order; output is flushed only when no request is waiting."""

    def __init__(self, maildir: Path, requests_fd: int, replies: BinaryIO) -> None:
        self.maildir = maildir
        self._in = requests_fd
        self._out = replies
        self._buffer = bytearray()

    def run(self) -> int:
        self._out.write(protocol.GREETING)
        try:
            for line in self._requests():
                verb, args = protocol.parse_request(line)
                if verb == "QUIT":
                    self._out.write(b"BYE\n")
                    break
                getattr(self, f"_do_{verb.lower()}")(*args)
        except ProtocolError as error:
            self._out.write(protocol.request("ERR", error))
            return EX_PROTOCOL
        except BrokenPipeError:
            raise
        except OSError as error:
            # strerror only: the owner learns what failed, nobody learns our paths
            self._out.write(protocol.request("ERR", f"server I/O error: {error.strerror}"))
            return EX_IOERR
        finally:
            self._out.flush()
        return EX_OK

    def _requests(self) -> Iterator[bytes]:
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > protocol.MAX_LINE:
                    raise ProtocolError("request line too long")
                self._out.flush()
                chunk = os.read(self._in, CHUNK)
                if not chunk:
                    return
                self._buffer += chunk
                continue
            line = bytes(self._buffer[:end + 1])
            del self._buffer[:end + 1]
            yield line

    def _do_list(self) -> None:
        entries, skipped = list_maildir(self.maildir)
        self._out.write(b"".join(f"{e.name} {e.size}\n".encode() for e in entries))
        self._out.write(protocol.request("END", len(entries), skipped))

    def _do_get(self, name: str) -> None:
        fd = self._open(name)
        if fd is None:
            return
        try:
            size = os.fstat(fd).st_size
            self._out.write(protocol.request("DATA", name, size))
            digest = _sha256(fd, size, copy_to=self._out.write)
            self._out.write(digest.encode() + b"\n")
        finally:
            os.close(fd)

    def _do_sum(self, name: str) -> None:
        fd = self._open(name)
        if fd is None:
            return
        try:
            size = os.fstat(fd).st_size
            digest = _sha256(fd, size)
        finally:
            os.close(fd)
        self._out.write(protocol.request("SUM", name, size, digest))

    def _open(self, name: str) -> int | None:
        """The message's descriptor, or None after telling the client it is gone."""
        try:
            return os.open(self.maildir / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            self._out.write(protocol.request("GONE", name))
            return None

    def _do_del(self, name: str, size: str) -> None:
        path = self.maildir / name
        try:
            actual = path.lstat().st_size
        except FileNotFoundError:
            self._out.write(protocol.request("GONE", name))
            return
        if actual != int(size):
            raise ProtocolError(f"{name} has {actual} bytes here, not {size}: not deleted")
        path.unlink()
        self._out.write(protocol.request("DELETED", name))


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(
        prog="onionpost fetch-serve",
        description="Serve `onionpost fetch` on stdin/stdout (run by sshd as the forced "
                    "command of the owner's fetch key; see `onionpost fetch "
                    "--print-authorized-key`).")
    parser.add_argument("--maildir", type=Path, default=settings.maildir,
                        help="the Maildir to serve (default: ONIONPOST_MAILDIR)")
    args = parser.parse_args(argv)
    replies = open(sys.stdout.fileno(), "wb", buffering=CHUNK * 4, closefd=False)  # noqa: SIM115
    if not all((args.maildir / sub).is_dir() for sub in ("new", "cur")):
        replies.write(protocol.request("ERR", "no Maildir at the configured path"))
        replies.flush()
        return EX_UNAVAILABLE
    try:
        return Server(args.maildir, sys.stdin.fileno(), replies).run()
    except BrokenPipeError:
        return EX_OK  # the client went away; whatever it confirmed is done
