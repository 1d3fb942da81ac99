"""The SMTP protocol object: aiosmtpd's SMTP with our speed-ups (command table, address
parser, DATA in blocks, pipelined replies, the deadline timer) and guards (line limits, junk
and lifetime, STARTTLS's plain-text leftovers); admission is the handler's."""

from __future__ import annotations

import asyncio
import copy
import re
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, syntax

from onionpost.ingest import pipelining, replies
from onionpost.ingest.data import DataPhase
from onionpost.ingest.guard import CommandReader, SessionGuard
from onionpost.ingest.handler import IngestHandler
from onionpost.ingest.junk import CommandLimits
from onionpost.ingest.replies import (
    DATA_OK,
    DATA_SYNTAX,
    GO_AHEAD,
    NEED_RCPT,
    NO_AUTH,
    NO_TLS,
    TIMED_OUT,
)
from onionpost.ingest.session import IngestSession
from onionpost.ingest.spool import SPILL_SIZE, Spool

# <dot-atom@dot-atom> then nothing or one space and parameters: parsed exactly as the email
# package parses it, in a fraction of the time.
PLAIN_ADDRESS = re.compile(
    r"<([A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>"
    r"(?: ([^\s(][\s\S]*))?\Z")
# Stream buffer per session. aiosmtpd's is its line limit (1001 bytes), which pauses and
# resumes reading every 2 KB of DATA; line lengths are still checked line by line.
STREAM_LIMIT = 64 * 1024
READ_ALL = 16 * 1024 * 1024  # more than the stream buffer can ever hold


class Commands:
    """A session's command table as aiosmtpd uses it (get, items), binding a session's
    smtp_* method only when it is called: aiosmtpd binds all twenty per connection."""

    __slots__ = ("_names", "_session")

    def __init__(self, session: IngestSMTP, names: dict[str, None]) -> None:
        """names: every command, in aiosmtpd's order (HELP lists them), shared read-only."""
        self._session = session
        self._names = names

    def get(self, name: str, default: Any = None) -> Any:
        if name not in self._names:
            return default
        return self._session.guard.dispatch(name, getattr(self._session, f"smtp_{name}"))

    def items(self) -> list[tuple[str, Any]]:
        return [(name, getattr(self._session, f"smtp_{name}")) for name in self._names]


class IngestSMTP(SMTP):
    """aiosmtpd's SMTP, faster and guarded; it asks its handler to admit each session
    before the greeting (aiosmtpd has no hook there) and tells it when the session ends."""

    event_handler: IngestHandler
    session: IngestSession | None

    def __init__(self, handler: IngestHandler, *, data_timeout: float,
                 sessions: set[IngestSMTP], junk_limit: int, lifetime: float,
                 **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.junk_limit = junk_limit
        self.lifetime = lifetime
        self.command_size_limits = CommandLimits()  # the template's own: never shared
        self.guard = SessionGuard(self, junk_limit, lifetime)
        self.data_timeout = data_timeout
        self.sessions = sessions
        self.deadline = 0.0  # the session times out when the loop's clock passes this
        self.held = bytearray()  # replies not yet written: the rest of a pipelined group follows
        self.command_names = dict.fromkeys(self._smtp_methods)

    def fresh(self) -> IngestSMTP:
        """A session object for a new connection, copied from this unused one. Building one
        from scratch costs aiosmtpd ~0.5 ms of introspection (inspect.getmembers of itself
        and the handler); the copy shares those read-only look-ups and gets its own stream
        state and command table (tests/unit/test_ingest_sessions.py checks nothing else
        mutable is shared)."""
        clone = copy.copy(self)
        asyncio.StreamReaderProtocol.__init__(
            clone, CommandReader(loop=self.loop, limit=STREAM_LIMIT),
            client_connected_cb=clone._cb_client_connected, loop=self.loop)
        clone._smtp_methods = Commands(clone, self.command_names)  # type: ignore[assignment]  # aiosmtpd calls only get() and items()
        clone.held = bytearray()
        clone.guard_session()
        return clone

    def guard_session(self) -> None:
        """This session's own line limits, junk count and lifetime (see guard.py)."""
        self.command_size_limits = CommandLimits()
        self.guard = SessionGuard(self, self.junk_limit, self.lifetime)
        self._stream_reader.guard = self.guard  # type: ignore[attr-defined]  # asyncio's private reader: fresh() made it a CommandReader

    def _create_session(self) -> IngestSession:
        """aiosmtpd's hook for our own Session; it makes one after STARTTLS as well."""
        session = IngestSession(self.loop)
        if self.session is not None:
            session.take_admission(self.session)
        return session

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's parser (the email package's, ~70 microseconds per MAIL and per RCPT)
        with a regular-expression shortcut for the plain `<local@domain> PARAMS` that nearly
        every client sends, and without the typing.Protocol class that aiosmtpd defines on
        every call (another ~45). tests/unit/test_ingest_sessions.py: same answers."""
        if not arg:
            return "", ""
        plain = PLAIN_ADDRESS.match(arg)
        if plain:
            addr, rest = plain.group(1), plain.group(2) or ""
        else:
            parse = get_angle_addr if arg.lstrip().startswith("<") else get_addr_spec
            try:
                address, rest = parse(arg)
            except (HeaderParseError, IndexError):  # IndexError: "a@", a bug of its own
                return None, None
            addr = address.addr_spec
        if self.local_part_limit and len(addr.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return addr, rest

    def _getparams(self, params: Any) -> dict[str, str | bool] | None:
        """aiosmtpd's, with SIZE= in ASCII digits only (RFC 1870): it checks str.isdigit(),
        which takes "²" that int() then refuses, and the exception was answered 451 (try
        again: a client would, for good)."""
        result: dict[str, str | bool] | None = super()._getparams(params)
        size = result.get("SIZE") if result else None
        if isinstance(size, str) and not (size.isascii() and size.isdigit()):
            return None
        return result

    async def _handle_client(self) -> None:
        self.sessions.add(self)
        refusal = None
        # With PROXY on, handle_PROXY admits once the header is read: closing with tor's
        # header still unread makes the kernel send a reset, and the 421 never arrives.
        assert self.session is not None  # connection_made made it
        if self._proxy_timeout is None:
            peer = self.session.peer
            refusal = self.event_handler.admit(self.session, str(peer[0]) if peer else "unknown")
        if refusal:
            await self.push(refusal)
            self.transport.close()  # type: ignore[union-attr]  # connection_made() set it
            return
        await super()._handle_client()

    def connection_lost(self, error: Exception | None) -> None:
        self.sessions.discard(self)
        self.guard.stop()
        if self.session is not None:
            self.event_handler.release(self.session)
        super().connection_lost(error)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # after STARTTLS: the TLS transport
        self.transport = pipelining.RepliesFirst(self.transport, self.send_held)  # type: ignore[assignment]  # a wrapper that forwards the rest

    async def push(self, status: Any) -> None:
        """Replies to pipelined commands wait while the client's next command is already
        read, and go out together when the reader would block (RFC 2920)."""
        if isinstance(status, str):
            # A reply may echo the client's undecodable bytes (VRFY's): never an exception.
            status = replies.enhance(status).encode(
                "utf-8" if self.enable_SMTPUTF8 else "ascii", "replace")
        self.held += status
        self.held += b"\r\n"
        if (len(self.held) >= pipelining.HOLD_LIMIT
                or not pipelining.may_wait(status, self.next_command_waiting())):
            await self.flush_replies()

    def next_command_waiting(self) -> bool:
        return b"\n" in self._reader._buffer  # type: ignore[attr-defined]  # asyncio's private buffer: a peek without reading

    async def flush_replies(self) -> None:
        self.send_held()
        await self._writer.drain()

    def send_held(self) -> None:
        held, self.held = bytes(self.held), bytearray()
        if held and self.transport is not None and not self.transport.is_closing():
            self._writer.write(held)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        self._reset_timeout(self.data_timeout)
        await self._receive_data(arg)
        if self.transport is not None:
            self._reset_timeout()  # back to the command timeout

    async def _receive_data(self, arg: str) -> None:
        """aiosmtpd's smtp_DATA, the content read in blocks rather than line by line (same
        rules: see ingest/data.py); a fifth of ingest's CPU went to the line loop."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.session is not None and self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push(NEED_RCPT)
            return
        if arg:
            await self.push(DATA_SYNTAX)
            return
        await self.push(GO_AHEAD)
        spool = self.event_handler.spool(self.session, self.envelope)
        try:
            await self._receive_content(spool)
        finally:
            spool.discard()  # unless the delivery took it over: a refusal, a hang-up...

    async def _receive_content(self, spool: Spool) -> None:
        """Read the content into the spool, then answer: an error once the end has come,
        or the handler's reply once the message is stored."""
        phase = DataPhase(self.data_size_limit, self.line_length_limit)
        while not phase.done:
            try:
                block = await self._reader.read(READ_ALL)
            except asyncio.CancelledError:  # the connection went away during DATA
                self._writer.close()
                raise
            if not block:
                return
            phase.feed(block)
            if phase.error:
                spool.discard()  # refused at the end anyway: free the disk now
            elif phase.buffered > SPILL_SIZE and not phase.done:
                await spool.spill(phase.drain())
        if phase.surplus and not self._reader.at_eof():
            # Pipelined commands after the end go back; read() emptied the buffer and
            # nothing arrives until we next await, so they keep their place.
            self._reader.feed_data(phase.surplus)
        if phase.error:
            await self.push(phase.error)
            self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd left it unannotated
            return
        spool.add(phase.drain())
        # The content is all here: a DATA deadline that runs out during the store would lose
        # the 250 of a stored message and bring a duplicate. The store gets the time RFC 5321
        # gives the client to wait for this reply (4.5.3.2.6: 10 minutes), not the idle
        # command timeout: encrypting at rest a flood of big messages takes minutes.
        self._reset_timeout(self.data_timeout)
        status = await self._call_handler_hook("DATA", spool)
        self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd left it unannotated
        await self.push(DATA_OK if status is MISSING else status)

    auth_offered = False  # HELP lists a command only when its `when` attribute is true

    @syntax("AUTH", when="auth_offered")
    async def smtp_AUTH(self, arg: str) -> None:
        await self.push(NO_AUTH)

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        if self.tls_context is None:  # aiosmtpd says 454 (temporary); TLS off is permanent
            await self.push(NO_TLS)
            return
        if not arg:
            self.discard_pipelined_input()
            # aiosmtpd hands this transport to TLS: the plain one, not our wrapper.
            self.transport = getattr(self.transport, "inner", self.transport)
        try:
            await super().smtp_STARTTLS(arg)
        except asyncio.CancelledError:  # a timeout or a close ended the handshake
            self.handshake_abandoned()
            raise

    def handshake_abandoned(self) -> None:
        """asyncio tells a protocol nothing of a connection lost before its TLS handshake
        finished: end the session here, or its slot stays taken for good."""
        if self.session is None or self.session.ssl is not None:
            return  # the handshake finished: connection_lost will come as usual
        if self._original_transport is not None:
            self._original_transport.abort()  # type: ignore[attr-defined]  # aiosmtpd types it BaseTransport: a socket's Transport
        self.connection_lost(None)

    def discard_pipelined_input(self) -> None:
        """Nothing a client sent after STARTTLS, still in plain text, may count as said
        over TLS (RFC 3207, CVE-2024-34083): aiosmtpd drops it after the handshake, we
        drop it before the 220 as well, so that the 220 never waits for it."""
        self._reader._buffer.clear()  # type: ignore[attr-defined]  # asyncio's private buffer: dropped unread

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Move the deadline; the timer moves only when it must fire earlier. aiosmtpd
        cancels and schedules a timer on every command (~5% of ingest's CPU)."""
        now = self.loop.time()
        self.deadline = now + (duration or self._timeout_duration)
        timer = self._timeout_handle
        if timer is None or timer.cancelled() or timer.when() > self.deadline:
            if timer is not None:
                timer.cancel()
            self._timeout_handle = self.loop.call_at(self.deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        if self.loop.time() < self.deadline:  # a command came meanwhile
            self._timeout_handle = self.loop.call_at(self.deadline, self._check_deadline)
        else:
            self._timeout_cb()

    def _timeout_cb(self) -> None:
        self.tell(TIMED_OUT)
        self.guard.hang_up()

    def tell(self, reply: str) -> None:
        """A last word, unless the transport is already closing (a TLS one may be half
        gone: writing to it would raise)."""
        self.send_held()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply.encode() + b"\r\n")  # type: ignore[attr-defined]  # aiosmtpd types it BaseTransport: a Transport
