"""Bounces of queued mail: a short text/plain explanation plus the original headers
(text/rfc822-headers), put straight into the user's local Maildir so neomutt shows it.
Nothing in it names this machine: the time is UTC, the ids are random."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

MAILER = "Mail Delivery"
NO_DOMAIN = "onionpost.invalid"


@dataclass(frozen=True)
class Failure:
    recipient: str
    reason: str


def headers_of(message: bytes) -> bytes:
    """The header block of a message, up to the first empty line."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, _ = message.partition(separator)
        if found:
            return head + separator[: len(separator) // 2]
    return message


def subject_of(headers: bytes) -> str:
    for line in headers.decode("utf-8", "replace").splitlines():
        if line.lower().startswith("subject:"):
            return line.split(":", 1)[1].strip()
    return ""


def build(original: bytes, sender: str, failures: list[Failure], own: str | None,
          now: datetime, why: str) -> bytes:
    """The bounce for `sender`: which recipients failed and why (`why` says what ended the
    tries: a refusal, or the queue lifetime)."""
    domain = own or NO_DOMAIN
    head = headers_of(original)
    subject = subject_of(head)
    bounce = EmailMessage()
    bounce["From"] = f"{MAILER} <mailer-daemon@{domain}>"
    bounce["To"] = sender
    bounce["Subject"] = f"Undelivered: {subject}" if subject else "Undelivered mail"
    bounce["Date"] = format_datetime(now, usegmt=False)
    bounce["Message-ID"] = f"<{secrets.token_hex(16)}@{domain}>"
    bounce["Auto-Submitted"] = "auto-replied"
    lines = [f"Your message could not be delivered to {len(failures)} recipient(s): {why}.", ""]
    lines += [f"  {failure.recipient}: {failure.reason}" for failure in failures]
    lines += ["", "The other recipients, if any, were not affected.",
              "The headers of your message follow."]
    bounce.set_content("\n".join(lines) + "\n")
    bounce.add_attachment(head.decode("utf-8", "replace"), subtype="rfc822-headers",
                          disposition="inline")
    return bounce.as_bytes()


def deliver_local(inbox: Path, raw: bytes) -> Path:
    """Into the Maildir's new/, durably (tmp, fsync, rename, fsync of new/)."""
    from onionpost import maildir  # here only: sendmail imports this module, not its asyncio

    maildir.ensure(inbox)
    name = maildir.file_name(maildir.new_queue_id(), len(raw))
    path = maildir.publish(inbox, maildir.write_tmp(inbox, name, [raw]))
    maildir.fsync_dir(inbox / "new")
    return path
