"""Ingest's SMTP replies: every text it answers with, and the RFC 3463 enhanced status code
that every 4xx/5xx (and the usual 2xx) carries."""

from __future__ import annotations

import re

# --- admission (handler.py), refused before the greeting or at MAIL ---------------------
PAUSED = "421 4.3.2 Mailbox paused, try again later"
TOO_MANY_SESSIONS = "421 4.7.0 Too many connections, try again later"
CIRCUIT_BUSY = "421 4.7.0 Too many connections from your circuit, try again later"
CIRCUIT_RATE = "450 4.7.0 Too many messages from your circuit, try again later"
MAILBOX_FULL = "452 4.2.2 Mailbox full, try again later"
# --- the transaction (handler.py) ---------------------------------------------------------
# EHLO lines we add to aiosmtpd's (RFC 2920, RFC 2034).
EXTENSIONS = ("250-PIPELINING", "250-ENHANCEDSTATUSCODES")
SENDER_OK = "250 2.1.0 OK"
RECIPIENT_OK = "250 2.1.5 OK"
QUEUED = "250 2.0.0 OK queued as {queue_id}"
RELAY_DENIED = "550 5.7.1 Relaying denied: only {domain} is served here"
BAD_MAILBOX = "553 5.1.3 Bad recipient address syntax"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
WRITE_FAILED = "452 4.3.1 Insufficient system storage, try again later"
INTERNAL_ERROR = "451 4.3.0 Local error in processing, try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
# --- what a session may waste (junk.py, guard.py) ---------------------------------------
# RFC 5321 4.5.3.1.9 answers a path over its limit with "501 Path too long": the command can
# never succeed as written. MAIL's line may be long through its parameters too: X.5.4
# (invalid command arguments); RCPT takes no parameters here, so its address is at fault:
# X.1.3.
MAIL_TOO_LONG = "501 5.5.4 Path too long (RFC 5321 4.5.3.1)"
RCPT_TOO_LONG = "501 5.1.3 Path too long (RFC 5321 4.5.3.1)"
TOO_MANY_JUNK = "421 4.7.0 Too many commands that send no mail, closing connection"
LIFETIME_OVER = "421 4.4.2 Session lasted too long, closing connection"
TIMED_OUT = "421 4.4.2 Timeout, closing connection"
# --- commands we answer ourselves (server.py) ---------------------------------------------
NO_TLS = "502 5.5.1 STARTTLS is not offered here"
NO_AUTH = "502 5.5.1 AUTH not offered: anyone may write to us"
# aiosmtpd's own texts where our code answers in its place (DATA, server.py and data.py):
# enhance() below gives them their codes.
NEED_RCPT = "503 Error: need RCPT command"
DATA_SYNTAX = "501 Syntax: DATA"
GO_AHEAD = "354 End data with <CR><LF>.<CR><LF>"
DATA_OK = "250 OK"
LINE_TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
TOO_MUCH_DATA = "552 Error: Too much mail data"

# aiosmtpd's own replies, given the enhanced codes our replies carry.
ENHANCED = {
    "552 Error: message size exceeds fixed maximum message size":
        "552 5.3.4 Message size exceeds fixed maximum message size",
    "552 Error: Too much mail data": "552 5.3.4 Message size exceeds fixed maximum message size",
    "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.2 Line too long",
    "500 Command line too long": "500 5.5.2 Command line too long",
    "503 Error: need MAIL command": "503 5.5.1 Need MAIL command",
    "503 Error: need RCPT command": "503 5.5.1 Need RCPT command",
    "503 Error: nested MAIL command": "503 5.5.1 Nested MAIL command",
    "250 OK": "250 2.0.0 OK",
    "221 Bye": "221 2.0.0 Bye",
    "220 Ready to start TLS": "220 2.0.0 Ready to start TLS",
}
# For any other 4xx/5xx reply without one: the code's usual meaning (RFC 3463 section 3).
BY_CODE = {
    "421": "4.3.2", "450": "4.2.0", "451": "4.3.0", "452": "4.3.1", "454": "4.7.0",
    "500": "5.5.2", "501": "5.5.4", "502": "5.5.1", "503": "5.5.1", "504": "5.5.4",
    "530": "5.7.0", "550": "5.0.0", "552": "5.3.4", "553": "5.1.3", "554": "5.7.0",
    "555": "5.5.4",
}
# 2xx replies of aiosmtpd that need one too (RFC 2034: all but the greeting and EHLO/HELO).
OK_PREFIXES = ("250 Supported commands", "250 Syntax:", "252 Cannot VRFY")
_ENHANCED = re.compile(r"\A(\d)\d\d[ -](\d)\.\d{1,3}\.\d{1,3}(?: |\Z)")


def enhance(status: str) -> str:
    """The reply with an enhanced status code; greetings and EHLO lines are left alone."""
    if status in ENHANCED:
        return ENHANCED[status]
    code = status[:3]
    if status.startswith(OK_PREFIXES):
        return f"{code} 2.0.0 {status[4:]}"
    if status[:1] not in ("4", "5") or _has_enhanced(status):
        return status
    enhanced = BY_CODE.get(code, f"{code[0]}.0.0")
    return f"{code}{status[3:4] or ' '}{enhanced} {status[4:]}".rstrip()


def _has_enhanced(status: str) -> bool:
    match = _ENHANCED.match(status)
    return match is not None and match.group(1) == match.group(2)
