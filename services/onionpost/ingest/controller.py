"""Running ingest: one process's server and background tasks (pause poller, quota rescan),
start-up, the pre-forked worker processes, SIGTERM. The protocol is server.py's."""

from __future__ import annotations

import asyncio
import functools
import gc
import ipaddress
import logging
import multiprocessing
import os
import secrets
import signal
import socket
import ssl
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from onionpost import maildir
from onionpost.child import die_with_parent, run_in_child
from onionpost.events import PAUSED_KEY
from onionpost.ingest import tls
from onionpost.ingest.handler import IngestHandler
from onionpost.ingest.ledger import Ledger, Limits
from onionpost.ingest.mailbox_usage import UsageKeeper
from onionpost.ingest.publisher import EventPublisher
from onionpost.ingest.replies import SHUTTING_DOWN
from onionpost.ingest.server import IngestSMTP
from onionpost.quota import Quota
from onionpost.setting_values import split_hostport

if TYPE_CHECKING:
    from onionpost.ingest.sealing import Sealer
    from onionpost.settings import Settings

log = logging.getLogger("onionpost.ingest")

PAUSE_POLL_SECONDS = 0.25


class Ingest:
    """Everything one ingest process runs."""

    def __init__(self, settings: Settings, domain: str, ledger: Ledger, salt: bytes,
                 tls_context: ssl.SSLContext | None, sealer: Sealer | None = None) -> None:
        self.settings = settings
        self.domain = domain
        self.tls_context = tls_context
        self.sessions: set[IngestSMTP] = set()
        self.publisher = EventPublisher(settings.redis_url)
        self.handler = IngestHandler(domain, settings.maildir, ledger, salt, self.publisher,
                                     settings.max_recipients, settings.fsync, sealer)

    def protocol(self) -> IngestSMTP:
        settings = self.settings
        return IngestSMTP(
            self.handler, data_timeout=settings.data_timeout, sessions=self.sessions,
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
        _ignore_further_signals(loop)
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
                if paused != self.handler.paused:
                    log.info("event=%s", "paused" if paused else "resumed")
                self.handler.paused = paused
            await asyncio.sleep(PAUSE_POLL_SECONDS)


def listening_socket(listen: str, reuse_port: bool) -> socket.socket:
    host, port = split_hostport(listen)
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
    host, _ = split_hostport(settings.ingest_listen)
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
        # In a child: cryptography (~3 MiB at rest) is needed only to check or make it.
        cert, key = run_in_child(functools.partial(
            self_signed, Path(settings.maildir).parent / "tls", domain))
    return domain, tls.server_context(cert, key, settings.tls_min)


def self_signed(directory: Path, domain: str) -> tuple[Path, Path]:
    from onionpost.ingest.certificate import ensure_self_signed

    return ensure_self_signed(directory, domain)


def sealer_of(settings: Settings) -> Sealer | None:
    """Encryption at rest when ONIONPOST_PGP_KEY is set; only then its libraries are loaded."""
    if settings.pgp_key is None:
        return None
    from onionpost.ingest.sealing import Sealer

    return Sealer.from_settings(settings)


def run(settings: Settings) -> int:
    domain, tls_context = prepare(settings)
    sealer = sealer_of(settings)  # fails closed: a key unfit to encrypt to stops us
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
        asyncio.run(Ingest(settings, domain, ledger, salt, tls_context, sealer).serve(sock))

    if settings.ingest_workers == 1:
        usage.start()
        work()
        return 0
    return _run_workers(work, settings.ingest_workers, usage.start)


def _ignore_further_signals(loop: asyncio.AbstractEventLoop) -> None:
    """All is answered and written: a later SIGTERM or SIGINT changes nothing. Left to
    asyncio, one arriving while asyncio.run closes the loop (its wakeup pipe closed before
    its handlers are removed) wrote a traceback to the log."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
        signal.signal(signum, signal.SIG_IGN)


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

