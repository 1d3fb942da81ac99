"""SMTP delivery to onion domains: one session per domain, bounded retries, and all or
nothing: every session gets through RCPT before any of them sends DATA."""

from __future__ import annotations

import contextlib
import logging
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from onionpost.exits import EX_DATAERR, EX_NOUSER, EX_TEMPFAIL, EX_UNAVAILABLE
from onionpost.sender import pipelining
from onionpost.sender.routing import Plan, Route

log = logging.getLogger("onionpost.sender")

SMTP_PORT = 25
MAX_PARALLEL_SESSIONS = 8
HELD = "not sent: another recipient failed and nothing is sent unless all can be (--partial)"
Connector = Callable[[str, int, float], socket.socket]
Status = Literal["sent", "temporary", "permanent", "held"]
# A permanent failure's exit code, by the worst kind seen (sendmail returns one code).
EXIT_PRIORITY = (EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE, EX_TEMPFAIL)
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class Result:
    recipient: str
    status: Status
    detail: str
    exit_code: int = 0
    local: bool = False  # the failure is on this machine (tor not running), not the receiver


@dataclass(frozen=True)
class Options:
    ehlo_name: str
    tls: bool = False  # STARTTLS when offered (ONIONPOST_SEND_STARTTLS=on)
    timeout: float = 60.0
    retry_delays: tuple[float, ...] = (10.0, 40.0)
    sleep: Callable[[float], None] = time.sleep


def permanent_exit_code(stage: str, code: int, text: str) -> int:
    """sysexits code of a 5xx reply: bad recipient (67), bad message (65), else 69."""
    if stage == "rcpt":
        return EX_NOUSER
    enhanced = _ENHANCED.match(text)
    if code == 552 or (enhanced and enhanced.group(2) == "6") or text.startswith("5.3.4"):
        return EX_DATAERR
    return EX_UNAVAILABLE


def exit_code(results: list[Result]) -> int:
    codes = {result.exit_code for result in results if result.status != "sent"}
    return next((code for code in EXIT_PRIORITY if code in codes), 0)


def may_commit(failures: list[Result], partial: bool, queue: bool = False) -> bool:
    """Send DATA only when no recipient failed, or the user asked for --partial. With the
    outbox (`queue`), temporary failures do not hold the others: they wait in the queue."""
    if queue and all(failure.status == "temporary" for failure in failures):
        return True
    return partial or not failures


class UnreachableError(OSError):
    """A connector could not reach the destination this time; the text says why."""


class TorNotRunningError(UnreachableError):
    """The local Tor SOCKS port refused the connection: no try can succeed until tor runs,
    so there is no retry (the outbox, if on, retries later)."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"tor is not running at {host}:{port}")


class DestinationRefusedError(Exception):
    """A connector says the destination cannot be reached however often we try (Tor: invalid
    onion address, or a client-authorization key we lack); `exit_code` says which kind."""

    def __init__(self, reason: str, exit_code: int = EX_NOUSER) -> None:
        super().__init__(reason)
        self.exit_code = exit_code


class _TemporaryError(Exception):
    """This try failed in a way that may pass: circuit trouble, a 4xx reply, a timeout."""


class OnionSMTP(smtplib.SMTP):
    """smtplib whose TCP connection is opened by `connector` (Tor's SOCKS port): the
    .onion name goes to Tor, never to a local resolver."""

    def __init__(self, connector: Connector, ehlo_name: str, timeout: float) -> None:
        self._connector = connector
        # local_hostname given: smtplib would otherwise send socket.getfqdn() in EHLO.
        super().__init__(local_hostname=ehlo_name, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        self._host = host  # starttls() sends it as SNI; smtplib sets it only in __init__
        return self._connector(host, port, timeout)


def tls_context() -> ssl.SSLContext:
    """No certificate check: the onion address already authenticates the server."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class DomainDelivery:
    """One domain's transaction, retried as a whole on temporary failures. `results` holds
    outcomes only: recipients accepted at RCPT wait in `accepted` until DATA is answered.
    With PIPELINING the server has already said 354 when prepare() ends (`awaiting_body`):
    commit sends the body, abort closes the connection before the final dot, so nothing is
    stored (RFC 5321 4.1.1.4: no complete transaction without it)."""

    route: Route
    sender: str
    message: bytes
    connector: Connector
    options: Options
    results: dict[str, Result] = field(default_factory=dict)
    accepted: list[str] = field(default_factory=list)
    awaiting_body: bool = False
    _smtp: OnionSMTP | None = None
    _delays: Iterator[float] = field(default_factory=lambda: iter(()))

    def prepare(self) -> None:
        """Connect, MAIL, RCPT each recipient; stop before DATA."""
        self._delays = iter((0.0, *self.options.retry_delays))
        self._retry(self._address, list(self.route.recipients))

    def commit(self) -> None:
        """DATA on the prepared session. A temporary failure redoes the whole transaction
        for the same recipients with the tries that are left."""
        recipients = list(self.accepted)
        try:
            if recipients and not self._attempt(lambda _: self._send_data(), recipients):
                self._retry(self._address_and_send, recipients)
        finally:
            self._quit()

    def abort(self) -> None:
        for recipient in self.accepted:
            self.results[recipient] = Result(recipient, "held", HELD)
        self.accepted = []
        self._quit()

    def _retry(self, step: Callable[[list[str]], None], recipients: list[str]) -> bool:
        """Run `step` until it succeeds or the tries are used up."""
        for delay in self._delays:
            self.options.sleep(delay)
            if self._attempt(step, recipients):
                return True
        return False

    def _attempt(self, step: Callable[[list[str]], None], recipients: list[str]) -> bool:
        """One try of `step`; False when it failed in a way worth another try."""
        try:
            step([r for r in recipients if self._pending(r)])
            return True
        except DestinationRefusedError as error:
            self._fail(recipients, "permanent", str(error), error.exit_code)
            return True
        except TorNotRunningError as error:  # temporary, but not worth another try now
            self._fail(recipients, "temporary", str(error), EX_TEMPFAIL, local=True)
            return True
        except (_TemporaryError, OSError, smtplib.SMTPException) as error:
            detail = _error_text(error)
            log.debug("event=try_failed recipients=%d reason=%r", len(recipients), detail)
            self._fail(recipients, "temporary", detail, EX_TEMPFAIL)
            return False

    def _fail(self, recipients: list[str], status: Status, detail: str, code: int,
              local: bool = False) -> None:
        self._close()
        for recipient in recipients:
            if self._pending(recipient):
                self.results[recipient] = Result(recipient, status, detail, code, local)
        self.accepted = []

    def _pending(self, recipient: str) -> bool:
        result = self.results.get(recipient)
        return result is None or result.status == "temporary"

    def _address_and_send(self, recipients: list[str]) -> None:
        self._address(recipients)
        if self.accepted:
            self._send_data()

    def _address(self, recipients: list[str]) -> None:
        smtp = self._open(recipients)
        if smtp is None:
            return
        options = self._mail_options(smtp)
        if pipelining.offered(smtp):
            self._address_pipelined(smtp, recipients, options)
            return
        code, text = smtp.mail(self.sender, options)
        if self._refused("mail", code, text, recipients):
            return
        self._take_rcpt_replies(recipients, [smtp.rcpt(recipient) for recipient in recipients])

    def _address_pipelined(self, smtp: OnionSMTP, recipients: list[str],
                           options: list[str]) -> None:
        """MAIL, RCPTs and DATA in one write (one round trip instead of one per command)."""
        replies = pipelining.send_envelope(smtp, self.sender, recipients, options)
        self.awaiting_body = replies.data[0] == 354
        if self._refused("mail", *replies.mail, recipients):
            return
        self._take_rcpt_replies(recipients, replies.rcpts)
        if self.accepted and self._refused("data", *replies.data, self.accepted):
            self.accepted = []

    def _take_rcpt_replies(self, recipients: list[str],
                           replies: list[tuple[int, bytes]]) -> None:
        self.accepted = []
        temporary = None
        for recipient, (code, text) in zip(recipients, replies, strict=True):
            if code < 300:
                self.accepted.append(recipient)
                self.results.pop(recipient, None)
            elif code < 500:
                temporary = _text(code, text)
            else:
                self._refused("rcpt", code, text, [recipient])
        if temporary:
            raise _TemporaryError(temporary)

    def _send_data(self) -> None:
        assert self._smtp is not None
        text: bytes | str  # smtplib's SMTPDataError may carry either
        if self.awaiting_body:
            code, text = pipelining.send_body(self._smtp, self.message)
            self._close()  # QUIT went with the final dot
        else:
            try:
                code, text = self._smtp.data(self.message)
            except smtplib.SMTPDataError as error:
                code, text = error.smtp_code, error.smtp_error
        if not self._refused("data", code, text, self.accepted):
            for recipient in self.accepted:
                self.results[recipient] = Result(recipient, "sent", _text(code, text))
        self.accepted = []

    def _refused(self, stage: str, code: int, text: bytes | str, recipients: list[str]) -> bool:
        """False for a positive reply; a 4xx raises _TemporaryError; a 5xx fails `recipients`."""
        if code < 400:
            return False
        if code < 500:
            raise _TemporaryError(_text(code, text))
        exit_ = permanent_exit_code(stage, code, _plain(text))
        for recipient in recipients:
            self.results[recipient] = Result(recipient, "permanent", _text(code, text), exit_)
        return True

    def _open(self, recipients: list[str]) -> OnionSMTP | None:
        smtp = OnionSMTP(self.connector, self.options.ehlo_name, self.options.timeout)
        self._smtp = smtp
        code, text = smtp.connect(self.route.domain, SMTP_PORT)
        if self._refused("connect", code, text, recipients):
            self._quit()
            return None
        smtp.ehlo_or_helo_if_needed()
        if self.options.tls and smtp.has_extn("starttls"):
            smtp.starttls(context=tls_context())
            smtp.ehlo_or_helo_if_needed()
        return smtp

    def _mail_options(self, smtp: OnionSMTP) -> list[str]:
        options = [f"SIZE={len(self.message)}"] if smtp.has_extn("size") else []
        if not self.message.isascii() and smtp.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if not (self.sender + "".join(self.route.recipients)).isascii():
            options.append("SMTPUTF8")
        return options

    def _close(self) -> None:
        self.awaiting_body = False
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def _quit(self) -> None:
        if self._smtp is None or self.awaiting_body:  # in DATA, QUIT would be body text
            self._close()
            return
        with contextlib.suppress(OSError, smtplib.SMTPException):
            self._smtp.quit()
        self._close()


def deliver(plan: Plan, sender: str, message: bytes, connector: Connector, options: Options,
            partial: bool = False, queue: bool = False) -> list[Result]:
    """Deliver to every route of `plan`; a result for every recipient, refused ones too."""
    refused = [Result(r.recipient, "permanent", r.reason, r.exit_code) for r in plan.refused]
    if refused and not partial:
        held = [Result(address, "held", HELD) for route in plan.routes
                for address in route.recipients]
        return refused + held
    deliveries = [DomainDelivery(route, sender, message, connector, options)
                  for route in plan.routes]
    with ThreadPoolExecutor(min(MAX_PARALLEL_SESSIONS, len(deliveries) or 1)) as pool:
        list(pool.map(DomainDelivery.prepare, deliveries))
        failures = [result for d in deliveries for result in d.results.values()]
        commit = may_commit(failures, partial, queue)
        finish = DomainDelivery.commit if commit else DomainDelivery.abort
        list(pool.map(finish, deliveries))
    return refused + [d.results[address] for d in deliveries for address in d.route.recipients]


def _plain(text: bytes | str) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


def _text(code: int, text: bytes | str) -> str:
    return f"{code} {' '.join(_plain(text).split())}"


def _error_text(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        return _text(error.smtp_code, error.smtp_error)
    if isinstance(error, _TemporaryError | UnreachableError):
        return str(error)
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out (the onion service did not answer in time)"
    return f"connection to the onion service failed: {error}"
