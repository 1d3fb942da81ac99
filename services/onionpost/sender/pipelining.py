"""RFC 2920 pipelining over an smtplib session (smtplib has none): MAIL, every RCPT and DATA
in one write, then the body, its final dot and QUIT in another; replies read in order."""

from __future__ import annotations

import contextlib
import re
import smtplib
from dataclasses import dataclass

Reply = tuple[int, bytes]
_LINE_START_DOT = re.compile(rb"(?m)^\.")


@dataclass(frozen=True)
class EnvelopeReplies:
    mail: Reply
    rcpts: list[Reply]
    data: Reply


def offered(smtp: smtplib.SMTP) -> bool:
    return smtp.has_extn("pipelining")


def send_envelope(smtp: smtplib.SMTP, sender: str, recipients: list[str],
                  options: list[str]) -> EnvelopeReplies:
    """MAIL, the RCPTs and DATA in one write; their replies, in order. A 354 to DATA leaves
    the session waiting for the body: send_body, or close the connection to abort."""
    if "SMTPUTF8" in options:
        if not smtp.has_extn("smtputf8"):
            raise smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server")
        smtp.command_encoding = "utf-8"
    parameters = "".join(f" {option}" for option in options)
    commands = [f"MAIL FROM:{smtplib.quoteaddr(sender)}{parameters}"]
    commands += [f"RCPT TO:{smtplib.quoteaddr(recipient)}" for recipient in recipients]
    smtp.send("".join(f"{command}\r\n" for command in [*commands, "DATA"]))
    mail = smtp.getreply()
    rcpts = [smtp.getreply() for _ in recipients]
    return EnvelopeReplies(mail, rcpts, smtp.getreply())


def send_body(smtp: smtplib.SMTP, message: bytes) -> Reply:
    """The message (dot-stuffed, as smtplib's data() does), the final dot and QUIT in one
    write; DATA's final reply. QUIT's reply is read but not needed: the message is done."""
    body = _LINE_START_DOT.sub(b"..", message)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    smtp.send(body + b".\r\nQUIT\r\n")
    reply = smtp.getreply()
    with contextlib.suppress(OSError, smtplib.SMTPServerDisconnected):
        smtp.getreply()
    return reply
