"""A mail flood from many concurrent SMTP sessions (smtplib), recording every reply."""

from __future__ import annotations

import smtplib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

RETRY_PAUSE = 0.05  # a refused flooder waits this long before it knocks again


@dataclass
class FloodResult:
    accepted: list[tuple[float, str]] = field(default_factory=list)  # (time of 250, queue id)
    refused: Counter[int] = field(default_factory=Counter)  # reply code -> count
    greeting_refusals: int = 0  # sessions turned away with 421 before any command
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def queue_ids(self) -> set[str]:
        return {queue_id for _, queue_id in self.accepted}


def message(tag: str) -> bytes:
    return (f"From: flood@example.org\r\nSubject: flood {tag}\r\n\r\n"
            f"message {tag}\r\n").encode()


class Flooder:
    """`sessions` threads, each sending its share of `total` messages (or sending until
    `until`, a monotonic deadline), reconnecting after the server closes on them."""

    def __init__(self, port: int, recipient: str, sessions: int = 20,
                 retry_pause: float = RETRY_PAUSE) -> None:
        self.port = port
        self.recipient = recipient
        self.sessions = sessions
        self.retry_pause = retry_pause
        self.result = FloodResult()
        self.stopped = threading.Event()

    def stop(self) -> None:
        """Make every session end after its current transaction."""
        self.stopped.set()

    def run(self, total: int | None = None, until: float | None = None) -> FloodResult:
        threads = [threading.Thread(target=self._session, args=(n, total, until), daemon=True)
                   for n in range(self.sessions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return self.result

    def _session(self, number: int, total: int | None, until: float | None) -> None:
        share = None if total is None else total // self.sessions + (number < total % self.sessions)
        client: smtplib.SMTP | None = None
        sent = 0
        while ((share is None or sent < share) and (until is None or time.monotonic() < until)
               and not self.stopped.is_set()):
            sent += 1
            if client is None:
                client = self._connect()
                if client is None:
                    continue
            if not self._send(client, f"{number}-{sent}"):
                client = self._close(client)
        if client is not None:
            self._close(client)

    def open_client(self) -> smtplib.SMTP:
        """A connected client; subclasses reach ingest another way (e.g. through tor)."""
        return smtplib.SMTP("127.0.0.1", self.port, timeout=30)

    def _connect(self) -> smtplib.SMTP | None:
        try:
            client = self.open_client()
            client.ehlo("flood.example")
            return client
        except smtplib.SMTPConnectError as error:
            with self.result.lock:
                self.result.greeting_refusals += 1
                self.result.refused[error.smtp_code] += 1
        except (smtplib.SMTPException, OSError):
            with self.result.lock:
                self.result.refused[0] += 1
        time.sleep(self.retry_pause)
        return None

    def _send(self, client: smtplib.SMTP, tag: str) -> bool:
        """One transaction; False when the session is over (421 or a dropped connection)."""
        reply: bytes | str  # smtplib's SMTPResponseException may carry either
        try:
            code, reply = client.mail("flood@example.org")
            if code == 250:
                code, reply = client.rcpt(self.recipient)
            if code == 250:
                code, reply = client.data(message(tag))
        except smtplib.SMTPResponseException as error:  # data() raises when DATA is refused
            code, reply = error.smtp_code, error.smtp_error
        except (smtplib.SMTPException, OSError):
            with self.result.lock:
                self.result.refused[0] += 1
            return False
        with self.result.lock:
            if code == 250:
                self.result.accepted.append((time.monotonic(), reply.decode().rsplit(" ", 1)[1]))
            else:
                self.result.refused[code] += 1
        if code == 250:
            return True
        if code == 421:
            return False
        try:
            client.rset()
        except (smtplib.SMTPException, OSError):
            return False
        time.sleep(self.retry_pause)
        return True

    @staticmethod
    def _close(client: smtplib.SMTP) -> None:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
