"""SMTP replies: every 4xx/5xx (and the usual 2xx) carries an RFC 3463 enhanced status code."""

from __future__ import annotations

import re

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
