"""One SMTP session's facts: aiosmtpd's Session and what admission learned of it."""

from __future__ import annotations

import asyncio

from aiosmtpd.smtp import Session


class IngestSession(Session):
    """Made by IngestSMTP through aiosmtpd's `_create_session()`; the handler admits it (see
    handler.py): its circuit (a keyed hash of tor's per-circuit address) and whether it
    holds a slot in the ledger, released once when the connection ends."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.circuit_key = 0
        self.admitted = False

    def take_admission(self, before: IngestSession) -> None:
        """aiosmtpd starts a new session after STARTTLS (RFC 3207: forget what was said in
        plain text); the connection, its circuit and its slot stay the same."""
        self.circuit_key, self.admitted = before.circuit_key, before.admitted
        before.admitted = False
