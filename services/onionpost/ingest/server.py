"""Running ingest: the SMTP protocol object, its background tasks, worker processes, SIGTERM."""

from __future__ import annotations

import asyncio
import copy
import gc
import ipaddress
import logging
import multiprocessing
import os
import re
import secrets
import signal
import socket
import ssl
import time
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError
from pathlib import Path
from typing import Any

import redis.asyncio
from aiosmtpd.smtp import MISSING, SMTP, syntax
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from onionpost import maildir
from onionpost.events import PAUSED_KEY, EventPublisher
from onionpost.ingest import pipelining, replies, tls
from onionpost.ingest.data import DataPhase
from onionpost.ingest.guard import CommandReader, SessionGuard
from onionpost.ingest.handler import (
    PAUSED,
    SHUTTING_DOWN,
    IngestHandler,
    PauseState,
    now_ms,
)
from onionpost.ingest.junk import CommandLimits
from onionpost.ingest.ledger import Ledger, Limits, circuit_key
from onionpost.ingest.mailbox_usage import UsageKeeper
from onionpost.ingest.spool import SPILL_SIZE, Spool
from onionpost.quota import Quota
from onionpost.settings import Settings
from onionpost.worker import die_with_parent

log = logging.getLogger("onionpost.ingest")

TIMED_OUT = "421 4.4.2 Timeout, closing connection"
NO_TLS = "502 5.5.1 STARTTLS is not offered here"
PAUSE_POLL_SECONDS = 0.25
NO_AUTH = "502 5.5.1 AUTH not offered: anyone may write to us"
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

    def __init__(self, session: SMTP, names: dict[str, None]) -> None:
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
    """aiosmtpd's SMTP with the admission step it has no hook for: before the greeting
    (paused? too many sessions? this circuit busy?) and a release when the session ends."""

    def __init__(self, handler: IngestHandler, *, ledger: Ledger, pause: PauseState,
                 salt: bytes, data_timeout: float, sessions: set[IngestSMTP],
                 junk_limit: int, lifetime: float, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.junk_limit = junk_limit
        self.lifetime = lifetime
        self.command_size_limits = CommandLimits()  # the template's own: never shared
        self.guard = SessionGuard(self, junk_limit, lifetime)
        self.ledger = ledger
        self.pause = pause
        self.salt = salt
        self.data_timeout = data_timeout
        self.sessions = sessions
        self.circuit_key = 0
        self.admitted = False
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
        clone._smtp_methods = Commands(clone, self.command_names)
        clone.held = bytearray()
        clone.guard_session()
        return clone

    def guard_session(self) -> None:
        """This session's own line limits, junk count and lifetime (see guard.py)."""
        self.command_size_limits = CommandLimits()
        self.guard = SessionGuard(self, self.junk_limit, self.lifetime)
        self._stream_reader.guard = self.guard  # type: ignore[union-attr]

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

    def admit(self, address: str) -> str | None:
        """Refuse while paused; else count this session against the global and per-circuit
        limits, or refuse it."""
        if self.pause.paused:
            return PAUSED
        key = circuit_key(address, self.salt)
        refusal = self.ledger.open_session(key, now_ms())
        if refusal is None:
            self.circuit_key, self.admitted = key, True
            self.guard.start()
        return refusal

    async def _handle_client(self) -> None:
        self.sessions.add(self)
        refusal = None
        # With PROXY on, handle_PROXY admits once the header is read: closing with tor's
        # header still unread makes the kernel send a reset, and the 421 never arrives.
        if self._proxy_timeout is None:
            peer = self.session.peer if self.session else None
            refusal = self.admit(str(peer[0]) if peer else "unknown")
        if refusal:
            await self.push(refusal)
            self.transport.close()  # type: ignore[union-attr]
            return
        await super()._handle_client()

    def connection_lost(self, error: Exception | None) -> None:
        self.sessions.discard(self)
        self.guard.stop()
        if self.admitted:
            self.admitted = False
            self.ledger.close_session(self.circuit_key, now_ms())
        super().connection_lost(error)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # after STARTTLS: the TLS transport
        self.transport = pipelining.RepliesFirst(self.transport, self.send_held)

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
        return b"\n" in self._reader._buffer  # type: ignore[attr-defined]

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
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
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
            self._set_post_data_state()
            return
        spool.add(phase.drain())
        # The content is all here: a DATA deadline that runs out during the (short) store
        # would lose the 250 of a stored message and bring a duplicate.
        self._reset_timeout()
        status = await self._call_handler_hook("DATA", spool)
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

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
            self._original_transport.abort()
        self.connection_lost(None)

    def discard_pipelined_input(self) -> None:
        """Nothing a client sent after STARTTLS, still in plain text, may count as said
        over TLS (RFC 3207, CVE-2024-34083): aiosmtpd drops it after the handshake, we
        drop it before the 220 as well, so that the 220 never waits for it."""
        self._reader._buffer.clear()  # type: ignore[attr-defined]

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
            self.transport.write(reply.encode() + b"\r\n")


class Ingest:
    """Everything one ingest process runs."""

    def __init__(self, settings: Settings, domain: str, ledger: Ledger, salt: bytes,
                 tls_context: ssl.SSLContext | None) -> None:
        self.settings = settings
        self.domain = domain
        self.ledger = ledger
        self.salt = salt
        self.tls_context = tls_context
        self.pause = PauseState()
        self.sessions: set[IngestSMTP] = set()
        self.publisher = EventPublisher(settings.redis_url)
        self.handler = IngestHandler(domain, settings.maildir, ledger, self.pause,
                                     self.publisher, settings.max_recipients, settings.fsync)

    def protocol(self) -> IngestSMTP:
        settings = self.settings
        return IngestSMTP(
            self.handler, ledger=self.ledger, pause=self.pause, salt=self.salt,
            data_timeout=settings.data_timeout, sessions=self.sessions,
            junk_limit=settings.junk_command_limit, lifetime=settings.lifetime(),
            hostname=self.domain, ident="ESMTP", data_size_limit=settings.max_message_size,
            enable_SMTPUTF8=True, tls_context=self.tls_context, require_starttls=False,
            auth_exclude_mechanism=["LOGIN", "PLAIN"],  # no AUTH: anyone may write to us
            timeout=settings.command_timeout,
            proxy_protocol_timeout=settings.proxy_timeout if settings.proxy_protocol else None)

    async def serve(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        self.publisher.start()
        tasks = [loop.create_task(self._poll_pause())]
        server = await loop.create_server(self.protocol().fresh, sock=sock)
        log.info("event=listening pid=%d", os.getpid())
        await stop.wait()
        server.close()  # stop accepting; sessions in progress stay for the moment
        self.handler.shutting_down = True  # no new write starts...
        await self.handler.idle.wait()  # ...and those in flight finish and are answered
        for session in list(self.sessions):
            session.tell(SHUTTING_DOWN)
            if session.transport is not None:
                session.transport.close()
        for task in tasks:
            task.cancel()
        self.publisher.stop()
        log.info("event=stopped pid=%d", os.getpid())

    async def _poll_pause(self) -> None:
        # One retry at once: a pooled connection from before a Redis restart fails its first
        # command; that is no outage (the events thread's client does the same by default).
        client = redis.asyncio.Redis.from_url(
            self.settings.redis_url, socket_timeout=1, socket_connect_timeout=1,
            retry=Retry(NoBackoff(), 1), retry_on_error=[redis.ConnectionError])
        while True:
            began = time.monotonic()
            try:
                paused = bool(await client.exists(PAUSED_KEY))
            except (redis.RedisError, OSError) as error:
                self.publisher.outage.down(error, began)  # the pause state stays as it was
            else:
                self.publisher.outage.up()
                if paused != self.pause.paused:
                    log.info("event=%s", "paused" if paused else "resumed")
                self.pause.paused = paused
            await asyncio.sleep(PAUSE_POLL_SECONDS)


def listening_socket(listen: str, reuse_port: bool) -> socket.socket:
    host, port = Settings.hostport(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # With the protocol named, accepted sockets carry it and asyncio turns Nagle off for
    # them (it checks sock.proto): else every multi-line reply waits for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def peers_share_one_circuit(settings: Settings) -> bool:
    """Without tor's PROXY header every connection counts as one circuit: harmless for a
    loopback listener (tests, one local tor), not for one that others can reach."""
    if settings.proxy_protocol:
        return False
    host, _ = Settings.hostport(settings.ingest_listen)
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: "localhost", or a container's name in the stack
        return host.lower() != "localhost"


def warn_if_shared(settings: Settings) -> None:
    if peers_share_one_circuit(settings):
        log.warning("event=proxy_protocol_off detail=\"every peer shares one circuit's"
                    " limits: set ONIONPOST_PROXY_PROTOCOL=true behind tor\"")


def prepare(settings: Settings) -> tuple[str, ssl.SSLContext | None]:
    """Start-up work done once, before any worker: domain, Maildir, crash leftovers, TLS."""
    domain = settings.onion_domain()
    maildir.ensure(settings.maildir)
    leftovers = maildir.clean_tmp(settings.maildir)
    if leftovers:
        log.warning("event=tmp_cleaned files=%d", leftovers)
    if settings.tls == "off":
        return domain, None
    if settings.tls_cert and settings.tls_key:
        cert, key = settings.tls_cert, settings.tls_key
    else:
        cert, key = tls.ensure_self_signed(Path(settings.maildir).parent / "tls", domain)
    return domain, tls.server_context(cert, key, settings.tls_min)


def run(settings: Settings) -> int:
    domain, tls_context = prepare(settings)
    limits = Limits(settings.max_sessions, settings.circuit_max_sessions,
                    settings.circuit_messages_per_minute, Quota.of(settings))
    ledger = Ledger.shared(limits)
    usage = UsageKeeper(settings.maildir, ledger, settings.quota_rescan_interval)
    usage.reconcile()
    salt = secrets.token_bytes(16)
    sock = listening_socket(settings.ingest_listen, reuse_port=False)
    log.info("event=start workers=%d tls=%s proxy=%s", settings.ingest_workers,
             settings.tls, settings.proxy_protocol)
    warn_if_shared(settings)
    # What start-up made lives as long as the process: keep the collector from walking it
    # again and again (and forked workers from copying its pages by touching them).
    gc.freeze()

    def work() -> None:
        asyncio.run(Ingest(settings, domain, ledger, salt, tls_context).serve(sock))

    if settings.ingest_workers == 1:
        usage.start()
        work()
        return 0
    return _run_workers(work, settings.ingest_workers, usage.start)


def _run_workers(work: Any, count: int, then: Any) -> int:
    """Pre-fork: the children share the listening socket and the ledger's memory."""
    context = multiprocessing.get_context("fork")

    def child() -> None:
        die_with_parent()
        work()

    workers = [context.Process(target=child, name=f"ingest-{n}") for n in range(count)]
    for worker in workers:
        worker.start()
    then()  # threads of the parent start after the forks

    def forward(signum: int, _frame: object) -> None:
        for worker in workers:
            if worker.pid and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for worker in workers:
        worker.join()
    return max((worker.exitcode or 0 for worker in workers), default=0)

