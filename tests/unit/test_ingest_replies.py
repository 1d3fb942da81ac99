"""Every error reply ingest sends carries an RFC 3463 code of the same class as its SMTP code."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onionpost.ingest import replies
from onionpost.ingest.replies import enhance

ENHANCED = re.compile(r"\A(\d)\d\d[ -](\d)\.\d{1,3}\.\d{1,3}( |\Z)")
# What aiosmtpd 1.4.6 itself sends (smtp.py), with and without enhanced codes.
AIOSMTPD_REPLIES = [
    "500 Error: bad syntax", '500 Error: command "XYZZY" not recognized',
    "500 Command line too long", "500 Line too long (see RFC5321 4.5.3.1.6)",
    "501 Syntax: MAIL FROM: <address>", "501 Syntax: EHLO hostname",
    "503 Error: send HELO first", "503 Error: nested MAIL command",
    "503 Error: need MAIL command", "503 Error: need RCPT command",
    "552 Error: message size exceeds fixed maximum message size",
    "552 Error: Too much mail data", "553 5.1.3 Error: malformed address",
    "555 MAIL FROM parameters not recognized or not implemented",
    "501 Error: SMTPUTF8 takes no arguments", "454 TLS not available",
    "554 Command refused due to lack of security", "502 Could not VRFY x",
    "504 5.5.4 Unrecognized authentication type", "421 4.7.0 MAIL sent too many times",
]
OURS = [replies.PAUSED, replies.RELAY_DENIED, replies.BAD_MAILBOX, replies.TOO_MANY_RECIPIENTS,
        replies.WRITE_FAILED, replies.INTERNAL_ERROR, replies.TOO_MANY_SESSIONS,
        replies.CIRCUIT_BUSY, replies.CIRCUIT_RATE, replies.MAILBOX_FULL, replies.SHUTTING_DOWN,
        replies.TIMED_OUT, replies.MAIL_TOO_LONG, replies.RCPT_TOO_LONG, replies.TOO_MANY_JUNK,
        replies.LIFETIME_OVER, replies.NO_TLS, replies.NO_AUTH, replies.NEED_RCPT,
        replies.DATA_SYNTAX, replies.LINE_TOO_LONG, replies.TOO_MUCH_DATA]


@pytest.mark.parametrize("status", AIOSMTPD_REPLIES + OURS)
def test_errors_get_an_enhanced_code_of_their_class(status: str) -> None:
    reply = enhance(status)
    match = ENHANCED.match(reply)
    assert match, reply
    assert match.group(1) == match.group(2) == status[0]
    assert reply[:3] == status[:3]


@pytest.mark.parametrize(("status", "expected"), [
    ("552 Error: Too much mail data", "552 5.3.4"),
    ("552 Error: message size exceeds fixed maximum message size", "552 5.3.4"),
    ("500 Error: bad syntax", "500 5.5.2"),
    ("501 Syntax: RCPT TO: <address>", "501 5.5.4"),
    ("503 Error: send HELO first", "503 5.5.1"),
])
def test_known_replies_get_their_specific_code(status: str, expected: str) -> None:
    assert enhance(status).startswith(expected + " ")


@pytest.mark.parametrize("status", [
    "220 onion.onion ESMTP", "250-onion.onion", "250-SIZE 1000", "250 HELP", "354 End data",
    "250 2.0.0 OK queued as ABC", "334 VXNlcm5hbWU6",
])
def test_greetings_ehlo_lines_and_coded_replies_are_left_alone(status: str) -> None:
    assert enhance(status) == status


@given(st.sampled_from("45"), st.integers(0, 99), st.text(max_size=40))
def test_any_error_reply_keeps_its_code_and_gains_a_class_match(
        first: str, rest: int, text: str) -> None:
    status = f"{first}{rest:02d} {text}"
    reply = enhance(status)
    match = ENHANCED.match(reply)
    assert match and match.group(2) == first
    assert reply.startswith(status[:3])


def test_an_enhanced_code_of_the_wrong_class_is_not_trusted() -> None:
    assert enhance("450 5.0.0 odd").startswith("450 4.")


@pytest.mark.parametrize("status", [
    "250 Supported commands: DATA EHLO", "250 Syntax: MAIL FROM: <address>",
    "252 Cannot VRFY user, but will accept message and attempt delivery"])
def test_help_and_vrfy_replies_get_2_0_0(status: str) -> None:
    assert enhance(status) == f"{status[:3]} 2.0.0 {status[4:]}"
