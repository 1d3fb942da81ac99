"""What a session may waste: line limits before parsing, which commands are junk, the count."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onionpost.ingest.junk import (
    COMMAND_LINE_LIMIT,
    MAIL_LINE_LIMIT,
    CommandLimits,
    JunkCount,
    Progress,
    advanced,
    oversized_address_line,
)
from onionpost.ingest.replies import MAIL_TOO_LONG, RCPT_TOO_LONG

START = Progress()
GREETED = Progress(greeted=True)
SENDER = Progress(greeted=True, sender=True)
ONE_RCPT = Progress(greeted=True, sender=True, recipients=1)
TLS = Progress(tls=True)


def line(verb: bytes, length: int) -> bytes:
    return verb + b"x" * (length - len(verb)) + b"\r\n"


@pytest.mark.parametrize(("command", "extended", "length", "refusal"), [
    (b"MAIL ", True, MAIL_LINE_LIMIT, None),
    (b"MAIL ", True, MAIL_LINE_LIMIT + 1, MAIL_TOO_LONG),
    (b"mail ", True, 60_000, MAIL_TOO_LONG),
    (b"MAIL ", False, COMMAND_LINE_LIMIT, None),
    (b"MAIL ", False, COMMAND_LINE_LIMIT + 1, MAIL_TOO_LONG),
    (b"RCPT ", True, COMMAND_LINE_LIMIT, None),
    (b"Rcpt ", True, COMMAND_LINE_LIMIT + 1, RCPT_TOO_LONG),
    (b"NOOP ", True, 60_000, None),  # aiosmtpd's own check answers 500 5.5.2
    (b"MAILX", True, 60_000, None),  # not MAIL: an unknown command
])
def test_mail_and_rcpt_lines_are_judged_by_length_alone(
        command: bytes, extended: bool, length: int, refusal: str | None) -> None:
    assert oversized_address_line(line(command, length), extended) == refusal


def test_refusals_follow_rfc_5321_path_too_long() -> None:
    assert MAIL_TOO_LONG.startswith("501 5.5.4 ")
    assert RCPT_TOO_LONG.startswith("501 5.1.3 ")


def test_command_limits_never_store_unknown_names_nor_grow() -> None:
    limits = CommandLimits()
    for name in ("X" * 60_000, "NOOP", "XYZZY"):
        assert limits[name] == COMMAND_LINE_LIMIT
    for _ in range(2000):  # what aiosmtpd does at every EHLO
        limits["MAIL"] += 26
        limits["MAIL"] += 10
    assert dict(limits) == {"MAIL": MAIL_LINE_LIMIT}
    assert limits is not CommandLimits()


@pytest.mark.parametrize(("command", "before", "after"), [
    ("EHLO", START, GREETED),
    ("HELO", START, GREETED),
    ("STARTTLS", GREETED, TLS),
    ("EHLO", TLS, Progress(greeted=True, tls=True)),  # the EHLO that RFC 3207 asks for
    ("MAIL", GREETED, SENDER),
    ("RCPT", SENDER, ONE_RCPT),
    ("RCPT", ONE_RCPT, Progress(greeted=True, sender=True, recipients=2)),
    ("DATA", ONE_RCPT, GREETED),
    ("QUIT", GREETED, GREETED),
])
def test_commands_that_bring_a_message_closer(
        command: str, before: Progress, after: Progress) -> None:
    assert advanced(command, before, after)


@pytest.mark.parametrize(("command", "before", "after"), [
    ("NOOP", ONE_RCPT, ONE_RCPT),
    ("RSET", ONE_RCPT, GREETED),
    ("EHLO", ONE_RCPT, GREETED),  # a second greeting resets the transaction
    ("HELO", GREETED, GREETED),
    ("HELP", GREETED, GREETED),
    ("VRFY", GREETED, GREETED),
    ("EXPN", GREETED, GREETED),
    ("AUTH", GREETED, GREETED),
    ("EHLO", START, START),  # EHLO without a name: 501
    ("MAIL", SENDER, SENDER),  # nested MAIL
    ("MAIL", GREETED, GREETED),  # refused: syntax, size, rate
    ("RCPT", SENDER, SENDER),  # refused recipient
    ("RCPT", GREETED, GREETED),  # no MAIL yet
    ("DATA", SENDER, SENDER),  # no recipient yet
    ("DATA", ONE_RCPT, ONE_RCPT),  # "DATA x": 501
])
def test_junk_commands(command: str, before: Progress, after: Progress) -> None:
    assert not advanced(command, before, after)


def test_past_the_limit_and_delivered_mail_starts_again() -> None:
    count = JunkCount(3)
    for _ in range(3):
        count.command("NOOP", GREETED, GREETED)
    assert not count.exceeded
    count.command("DATA", ONE_RCPT, GREETED)
    assert count.count == 0
    count.refused()
    count.command("RSET", SENDER, GREETED)
    count.command("MAIL", GREETED, SENDER)
    count.command("HELP", SENDER, SENDER)
    assert count.count == 3 and not count.exceeded
    count.refused()
    assert count.exceeded


progress = st.builds(Progress, st.booleans(), st.booleans(), st.booleans(), st.integers(0, 60))


@given(st.sampled_from(["NOOP", "RSET", "HELP", "VRFY", "EXPN", "AUTH", "XYZZY"]), progress,
       progress)
def test_commands_that_cannot_send_mail_are_junk_whatever_they_did(
        command: str, before: Progress, after: Progress) -> None:
    """They can only go back (RSET) or stay; a state that moved forward is not theirs."""
    moved_back = Progress(before.greeted, before.tls, after.sender and before.sender,
                          min(before.recipients, after.recipients))
    assert not advanced(command, before, moved_back)
