"""RFC 2920 pipelining on ingest's side: which replies may wait for the next ones, so that a
pipelined group's replies leave in one write, and a transport that sends them before closing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Replies after which the client waits for us (the banner, STARTTLS's 220, DATA's 354) or
# the connection ends (221, 421): they always go out at once, with anything held before.
SEND_AT_ONCE = frozenset({b"220", b"221", b"354", b"421"})
# Held replies past this size are written (and drained) at once: a client that pipelines
# without reading meets backpressure instead of growing our memory.
HOLD_LIMIT = 16 * 1024


def may_wait(reply: bytes, next_command_waiting: bool) -> bool:
    """True when `reply` can be held for the same write as the replies that follow: a line
    of a multi-line reply (EHLO), or the client's next command is already here."""
    if reply[3:4] == b"-":
        return True
    return next_command_waiting and reply[:3] not in SEND_AT_ONCE


class RepliesFirst:
    """A session's transport whose close() first writes the replies still held: every path
    that closes a session (QUIT, limits, timeouts, shutdown) stays correct."""

    __slots__ = ("_send_held", "inner")

    def __init__(self, inner: Any, send_held: Callable[[], None]) -> None:
        self.inner = inner
        self._send_held = send_held

    def close(self) -> None:
        self._send_held()
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
