"""The client end of the fetch protocol over a pair of pipes (ssh's stdout and stdin)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO

from onionpost.fetch import protocol
from onionpost.fetch.protocol import Entry, ProtocolError

CHUNK = 1 << 16


class ConnectionLostError(Exception):
    """The stream ended early: ssh, the network or the server went away."""


class ServerError(Exception):
    """The server answered ERR."""


class Session:
    """The client end of the protocol over a pair of pipes."""

    def __init__(self, replies: IO[bytes], requests_out: IO[bytes]) -> None:
        self._in = replies
        self._out = requests_out
        self.greeted = False
        self.last_heard = time.monotonic()  # for the idle watchdog

    def greet(self) -> None:
        line = self._in.readline(protocol.MAX_LINE)
        if not line:
            raise ConnectionLostError("no answer from the server")
        if line != protocol.GREETING:
            self._check_error(protocol.decode(line))
            raise ProtocolError(f"not an onionpost fetch server (it said {line[:60]!r})")
        self.greeted = True

    def words(self) -> list[str]:
        line = self._in.readline(protocol.MAX_LINE)
        self.last_heard = time.monotonic()
        if not line:
            raise ConnectionLostError("connection closed by the server")
        words = protocol.decode(line)
        self._check_error(words)
        return words

    def send(self, lines: list[bytes]) -> None:
        try:
            self._out.write(b"".join(lines))
            self._out.flush()
        except (BrokenPipeError, ConnectionResetError):
            raise ConnectionLostError("connection closed while sending") from None

    def listing(self) -> tuple[list[Entry], int]:
        self.send([protocol.request("LIST")])
        entries: list[Entry] = []
        while True:
            item = protocol.parse_list_line(self.words())
            if isinstance(item, Entry):
                entries.append(item)
                continue
            count, skipped = item
            if count != len(entries):
                raise ProtocolError(f"the server listed {len(entries)} messages, said {count}")
            return entries, skipped

    def body_into(self, write: Callable[[bytes], object], size: int) -> str:
        """Pass size bytes to write; return the digest line that follows."""
        left = size
        while left:
            chunk = self._in.read(min(CHUNK, left))
            self.last_heard = time.monotonic()
            if not chunk:
                raise ConnectionLostError("connection closed in the middle of a message")
            write(chunk)
            left -= len(chunk)
        words = self.words()
        if len(words) != 1:
            raise ProtocolError(f"expected a sha256 after the message, got {words[0][:40]!r}")
        return protocol.check_digest(words[0])

    def quit(self) -> None:
        self.send([protocol.request("QUIT")])
        if self.words() != ["BYE"]:
            raise ProtocolError("expected BYE")

    @staticmethod
    def _check_error(words: list[str]) -> None:
        error = protocol.server_error(words)
        if error is not None:
            raise ServerError(error)
