"""The aiosmtpd handler: who may send what to us (admission of each session, the mailbox's
pause and quota), and durable delivery into the Maildir."""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException

from onionpost import maildir
from onionpost.events import MessageStored
from onionpost.ingest import delivery
from onionpost.ingest.junk import PATH_LIMIT
from onionpost.ingest.ledger import Ledger, circuit_key
from onionpost.ingest.publisher import EventPublisher
from onionpost.ingest.replies import (
    BAD_MAILBOX,
    EXTENSIONS,
    INTERNAL_ERROR,
    MAIL_TOO_LONG,
    PAUSED,
    QUEUED,
    RECIPIENT_OK,
    RELAY_DENIED,
    SENDER_OK,
    SHUTTING_DOWN,
    TOO_MANY_RECIPIENTS,
    WRITE_FAILED,
)
from onionpost.ingest.session import IngestSession
from onionpost.ingest.spool import Spool
from onionpost.pgp_key import EncryptionError

if TYPE_CHECKING:
    from onionpost.ingest.sealing import Sealer

log = logging.getLogger("onionpost.ingest")

MAX_LOCAL_PART = 64
SPOOL_THREADS = 4


def valid_local_part(local: str) -> bool:
    """Any local part is ours, but no control characters, no 8-bit garbage, bounded."""
    if not local or len(local.encode("utf-8", "surrogateescape")) > MAX_LOCAL_PART:
        return False
    return not any(ord(char) < 0x20 or ord(char) == 0x7F or 0xDC80 <= ord(char) <= 0xDCFF
                   for char in local)


def header_safe(text: str) -> str:
    """Text we copy into a header: printable ASCII only, else dropped."""
    return text if text.isascii() and text.isprintable() else ""


class IngestHandler:
    """aiosmtpd's hooks, and admission, which aiosmtpd has no hook for: IngestSMTP asks
    before the greeting (or handle_PROXY, once tor's header is read) and tells when the
    connection ends. The ledger is shared by all ingest processes; `paused` is the
    guardian's word, kept fresh by a poller (see controller.py)."""

    def __init__(self, domain: str, maildir_path: Path, ledger: Ledger, salt: bytes,
                 publisher: EventPublisher | None, max_recipients: int,
                 fsync_mode: str = "group", sealer: Sealer | None = None) -> None:
        self.domain = domain
        self.ledger = ledger
        self.salt = salt  # of the circuit keys: random per start, shared by the processes
        self.paused = False
        self.publisher = publisher
        self.max_recipients = max_recipients
        self.delivery = delivery.delivery(fsync_mode, maildir_path)
        self.tmp_dir = f"{maildir_path}/tmp/"
        # Spilled messages' writes (see Spool), apart from the group commit's thread.
        self.spool_threads = ThreadPoolExecutor(SPOOL_THREADS, thread_name_prefix="spool")
        self.sealer = sealer  # encryption at rest, when the owner's key is set
        self.writes_in_flight = 0
        self.shutting_down = False
        self.idle = asyncio.Event()
        self.idle.set()

    def admit(self, session: IngestSession, address: str) -> str | None:
        """Refuse while paused; else count this session against the global and per-circuit
        limits, or refuse it."""
        if self.paused:
            return PAUSED
        key = circuit_key(address, self.salt)
        refusal = self.ledger.open_session(key, now_ms())
        if refusal is None:
            session.circuit_key, session.admitted = key, True
        return refusal

    def release(self, session: IngestSession) -> None:
        """The connection ended: an admitted session's slot is free again."""
        if session.admitted:
            session.admitted = False
            self.ledger.close_session(session.circuit_key, now_ms())

    async def handle_PROXY(self, server: SMTP, session: IngestSession, envelope: Envelope,
                           proxy_data: Any) -> bool:
        refusal = self.admit(session, str(proxy_data.src_addr))
        if refusal:
            await server.push(refusal)
            return False
        return True

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        """aiosmtpd advertises AUTH (even with no mechanism) after STARTTLS: we have none.
        Every reply carries an RFC 3463 code (see replies.py): say so (RFC 2034). Replies
        to pipelined commands come in order, in one write (RFC 2920, server.py's push)."""
        session.host_name = hostname
        lines = [line for line in responses if not line[4:].startswith("AUTH")]
        return [*lines[:-1], *EXTENSIONS, lines[-1]]

    async def handle_MAIL(self, server: SMTP, session: IngestSession, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if self.paused:
            asyncio.get_running_loop().call_soon(server.transport.close)  # type: ignore[union-attr]  # a session in MAIL is connected
            return PAUSED
        if len(f"<{address}>".encode("utf-8", "surrogateescape")) > PATH_LIMIT:
            return MAIL_TOO_LONG  # and our Return-Path line stays far below 998 octets
        refusal = self.ledger.take_message(session.circuit_key, now_ms())
        if refusal:
            return refusal
        declared = next((int(option[5:]) for option in mail_options
                         if option.startswith("SIZE=") and option[5:].isdigit()), 0)
        refusal = self.ledger.has_room(declared)
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return SENDER_OK

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        local, at, domain = address.rpartition("@")
        if not at or domain.lower() != self.domain:
            return RELAY_DENIED.format(domain=self.domain)
        if not valid_local_part(local):
            return BAD_MAILBOX
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return TOO_MANY_RECIPIENTS
        refusal = self.ledger.has_room(0)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return RECIPIENT_OK

    def spool(self, session: Session, envelope: Envelope) -> Spool:
        """Where a DATA phase puts its message: our trace headers first (all they say is
        known when DATA starts: Postfix too dates its Received header then)."""
        queue_id = maildir.new_queue_id()
        header = self.trace_headers(session, envelope, queue_id)
        if self.sealer:
            return self.sealer.spool(self.tmp_dir, queue_id, header, self.spool_threads)
        return Spool(self.tmp_dir, queue_id, header, self.spool_threads)

    async def handle_DATA(self, server: SMTP, session: IngestSession, envelope: Envelope,
                          spool: Spool) -> str:
        if self.shutting_down:
            return SHUTTING_DOWN
        try:
            await spool.seal()
        except EncryptionError as error:  # never stored in clear instead
            log.error("event=encrypt_failed error=%s", error)
            return INTERNAL_ERROR
        if spool.error is not None:
            log.error("event=write_failed error=%s", error_name(spool.error))
            return WRITE_FAILED
        size = spool.size
        name = maildir.file_name(spool.queue_id, size)
        refusal = self.ledger.reserve(size)
        if refusal:
            return refusal
        # A client hanging up cancels this coroutine; the write must still finish (or be
        # undone) so that the Maildir and the quota counters stay true: shield it.
        spool.hand_over()
        self._begin_write()
        store = asyncio.ensure_future(self._store(
            name, size, spool, envelope, session.circuit_key))
        try:
            return await asyncio.shield(store)
        finally:
            if store.done():  # end now, so that the reply is sent before a shutdown closes
                self._end_write()
            else:
                store.add_done_callback(lambda _: self._end_write())

    async def _store(self, name: str, size: int, spool: Spool, envelope: Envelope,
                     circuit_key: int) -> str:
        queue_id = spool.queue_id
        try:
            try:
                content = await spool.finish()
            except OSError as error:
                raise delivery.NotStoredError("write", error) from error
            await self.delivery.deliver(name, content,
                                        lambda move: self.ledger.commit(size, move))
        except delivery.NotStoredError as failure:
            self.ledger.release(size)
            log.error("event=%s_failed error=%s", failure.stage, error_name(failure.error))
            return WRITE_FAILED
        except delivery.NameNotDurableError as failure:
            # The file is whole in new/ but its name may not be durable: ask for a retry
            # (a possible duplicate beats a possible loss).
            log.error("event=dir_fsync_failed error=%s", error_name(failure.error))
            return INTERNAL_ERROR
        log.info("event=stored id=%s size=%d rcpts=%d", queue_id, size, len(envelope.rcpt_tos))
        if self.publisher:
            self.publisher.publish(MessageStored(
                name, size, len(envelope.rcpt_tos), time.time(), f"{circuit_key & 0xFFFFFFFF:08x}"))
        return QUEUED.format(queue_id=queue_id)

    def trace_headers(self, session: Session, envelope: Envelope, queue_id: str) -> bytes:
        """Return-Path and Received: our onion, the protocol, an id and a UTC date. Nothing
        about the sender's host, no IP, no local timezone, no software version."""
        protocol = "UTF8SMTP" if envelope.smtp_utf8 else "ESMTP"
        if session.ssl is not None:
            protocol += "S"
        date = received_date(int(time.time()))
        sender = header_safe(envelope.mail_from or "")
        return_path = f"<{sender.strip('<>')}>" if sender else "<>"
        return (f"Return-Path: {return_path}\r\n"
                f"Received: by {self.domain} (onionpost) with {protocol} id {queue_id};\r\n"
                f"\t{date}\r\n").encode("ascii")

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):  # the client's failure, not ours
            log.info("event=tls_failed")
            return INTERNAL_ERROR
        log.error("event=session_error error=%s", type(error).__name__)
        return INTERNAL_ERROR

    def _begin_write(self) -> None:
        self.writes_in_flight += 1
        self.idle.clear()

    def _end_write(self) -> None:
        self.writes_in_flight -= 1
        if not self.writes_in_flight:
            self.idle.set()


@functools.lru_cache(maxsize=1)
def received_date(second: int) -> str:
    """RFC 5322 date in UTC, made once a second rather than once a message."""
    return format_datetime(datetime.fromtimestamp(second, UTC))


def error_name(error: OSError) -> str:
    """ENOSPC rather than 'No space left on device': one word in a key=value line."""
    return errno.errorcode.get(error.errno or 0, type(error).__name__)


def now_ms() -> int:
    return time.monotonic_ns() // 1_000_000
