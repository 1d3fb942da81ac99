"""One session's defences, wired into aiosmtpd's command loop from the outside: over-long
MAIL/RCPT lines refused unparsed, junk commands counted, and a lifetime.

aiosmtpd has no hook between two commands. Its loop reads every command line with the
stream's readuntil() and looks every command up in the session's command table: the
session's stream (CommandReader) and table (see server.Commands) call in here, so the loop
itself stays aiosmtpd's."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from onionpost.ingest import junk, replies

if TYPE_CHECKING:
    from onionpost.ingest.server import IngestSMTP

Command = Callable[[str | None], Awaitable[None]]
# A peer that reads nothing keeps a closing transport open (its last words never leave):
# the connection is dropped after this many seconds.
CLOSE_GRACE_SECONDS = 10.0


class CommandReader(asyncio.StreamReader):
    """A session's stream: command lines pass the guard first. Data (DATA's content, the
    PROXY header) is read while a command runs or before the session starts: untouched."""

    guard: SessionGuard | None = None

    async def readuntil(self, separator: bytes = b"\n") -> bytes:  # type: ignore[override]  # aiosmtpd passes bytes; Python 3.13 also takes a tuple
        guard = self.guard
        if guard is None or not guard.watching():
            return await super().readuntil(separator)
        if guard.overrun:  # the rest of an over-long line, which aiosmtpd answers
            return guard.line_read(await self._line(separator))
        await guard.before_next_command()
        while True:
            line = await self._line(separator)
            refusal = junk.oversized_address_line(line, guard.extended)
            if refusal is None:
                return guard.line_read(line)
            await guard.refuse(refusal)

    async def _line(self, separator: bytes) -> bytes:
        assert self.guard is not None
        try:
            return await super().readuntil(separator)
        except asyncio.LimitOverrunError:
            self.guard.overrun = True
            raise


class SessionGuard:
    """Counts what a session wastes and ends it past its junk limit or its lifetime (never
    in the middle of a command: a message being received or written is answered first)."""

    def __init__(self, session: IngestSMTP, junk_limit: int, lifetime: float) -> None:
        self.session = session
        self.junk = junk.JunkCount(junk_limit)
        self.lifetime = lifetime
        self.started = False
        self.running = False  # a command is being carried out
        self.line_waiting = False  # a line was read that no command has taken yet
        self.overrun = False  # in a line longer than the stream buffer
        self.expired = False
        self.timer: asyncio.TimerHandle | None = None

    @property
    def between_commands(self) -> bool:
        return self.started and not self.running

    def watching(self) -> bool:
        """Between two commands of an admitted session. The handler admits it (see
        handler.admit) and the greeting follows: its first command line starts the guard."""
        if not self.started:
            session = self.session.session
            if session is None or not session.admitted:
                return False  # tor's PROXY header, or a session refused
            self.start()
        return not self.running

    @property
    def extended(self) -> bool:
        return bool(self.session.session and self.session.session.extended_smtp)

    def start(self) -> None:
        """The session is admitted and greeted: its lifetime runs from now."""
        self.started = True
        self.timer = self.session.loop.call_later(self.lifetime, self._expire)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def line_read(self, line: bytes) -> bytes:
        self.overrun = False
        self.line_waiting = True
        return line

    def dispatch(self, name: str, method: Command) -> Command:
        """The command aiosmtpd's loop is about to run, watched (HELP's look-ups, made
        while a command runs, get the plain method)."""
        if not self.between_commands:
            return method
        self.line_waiting = False
        return functools.partial(self._run, name, method)

    async def _run(self, name: str, method: Command, arg: str | None) -> None:
        before = self.progress()
        self.running = True
        try:
            await method(arg)
        finally:  # a command that raised was answered with an error: junk as well
            self.running = False
            self.junk.command(name, before, self.progress())

    def progress(self) -> junk.Progress:
        session, envelope = self.session.session, self.session.envelope
        if session is None or envelope is None:
            return junk.Progress()
        return junk.Progress(bool(session.host_name), session.ssl is not None,
                             bool(envelope.mail_from), len(envelope.rcpt_tos))

    async def before_next_command(self) -> None:
        """Where Postfix checks its error limits: the last command is answered, the next
        one not yet read. A line aiosmtpd refused without a command (unknown, too long,
        empty) is junk too."""
        if self.line_waiting:
            self.line_waiting = False
            self.junk.refused()
        if self.junk.exceeded:
            await self.close(replies.TOO_MANY_JUNK)
        elif self.expired:
            await self.close(replies.LIFETIME_OVER)

    async def refuse(self, reply: str) -> None:
        await self.session.push(reply)
        self.junk.refused()
        if self.junk.exceeded:
            await self.close(replies.TOO_MANY_JUNK)

    async def close(self, reply: str) -> None:
        """Say why and close; the session's task ends at its next wait, as after QUIT."""
        transport = self.session.transport
        if transport is not None and not transport.is_closing():
            await self.session.push(reply)
        self.hang_up()

    def hang_up(self) -> None:
        session = self.session
        if session.transport is not None:
            session.transport.close()
            session.loop.call_later(CLOSE_GRACE_SECONDS, session.transport.abort)  # type: ignore[attr-defined]  # aiosmtpd types it BaseTransport: a Transport
        if session._handler_coroutine is not None:
            session._handler_coroutine.cancel()

    def _expire(self) -> None:
        if self.running:  # closed once the command is answered
            self.expired = True
            return
        self.session.tell(replies.LIFETIME_OVER)
        self.hang_up()
