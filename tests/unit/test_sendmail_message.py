"""Reading the message as sendmail does, and editing header fields without touching the rest."""

from __future__ import annotations

import io

import pytest

from onionpost.sender.message import Draft, read

RAW = (b"From: Ann <ann@a.onion>\n"
       b"To: bob@b.onion,\n"
       b"\tcarl@c.onion\n"
       b"Subject: a long subject that was folded\n"
       b"  onto a second line\n"
       b"\n"
       b"Body line\n"
       b".\n"
       b"..two dots\n"
       b"From the start of a line\n")


@pytest.mark.parametrize("ending", [b".\n", b".\r\n"])
def test_a_lone_dot_ends_the_message_without_i(ending: bytes) -> None:
    stream = io.BytesIO(b"Subject: x\n\nkept\n" + ending + b"dropped\n")
    assert read(stream, dots_end_message=True) == b"Subject: x\n\nkept\n"


def test_a_lone_dot_at_the_very_end() -> None:
    assert read(io.BytesIO(b"Subject: x\n\nkept\n."), True) == b"Subject: x\n\nkept\n"


def test_with_i_dots_are_plain_text() -> None:
    assert read(io.BytesIO(RAW), dots_end_message=False) == RAW


def test_dot_with_more_on_the_line_does_not_end() -> None:
    data = b"Subject: x\n\n.. \n.x\n .\n"
    assert read(io.BytesIO(data), dots_end_message=True) == data


def test_fields_and_body_are_split_and_unfolded() -> None:
    draft = Draft.parse(RAW)
    assert list(draft.names()) == ["from", "to", "subject"]
    assert draft.values("SUBJECT") == ["a long subject that was folded  onto a second line"]
    assert draft.addresses("to") == [("", "bob@b.onion"), ("", "carl@c.onion")]
    assert draft.body.startswith(b"Body line\n.\n..two dots\n")


def test_untouched_message_round_trips_with_crlf() -> None:
    assert Draft.parse(RAW).to_bytes() == RAW.replace(b"\n", b"\r\n")
    crlf = RAW.replace(b"\n", b"\r\n")
    assert Draft.parse(crlf).to_bytes() == crlf


def test_edits_touch_only_the_named_fields() -> None:
    draft = Draft.parse(RAW)
    draft.remove("to")
    draft.set("Subject", "new")
    draft.set("Date", "Thu, 01 Jan 2026 00:00:00 +0000")
    assert draft.to_bytes() == (b"From: Ann <ann@a.onion>\r\nSubject: new\r\n"
                                b"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n"
                                + RAW.split(b"\n\n", 1)[1].replace(b"\n", b"\r\n"))


def test_set_replaces_every_copy_in_place() -> None:
    draft = Draft.parse(b"A: 1\nDate: one\nB: 2\nDate: two\n\nbody\n")
    draft.set("Date", "three")
    assert draft.to_bytes() == b"A: 1\r\nDate: three\r\nB: 2\r\n\r\nbody\r\n"


def test_mbox_separator_line_is_dropped() -> None:
    draft = Draft.parse(b"From ann@a.onion Thu Jan  1 00:00:00 2026\nSubject: x\n\nbody\n")
    assert list(draft.names()) == ["subject"]


def test_body_without_blank_line() -> None:
    draft = Draft.parse(b"Subject: x\nthis is not a header\nmore\n")
    assert list(draft.names()) == ["subject"]
    assert draft.body == b"this is not a header\nmore\n"
    assert draft.to_bytes() == b"Subject: x\r\n\r\nthis is not a header\r\nmore\r\n"


def test_headers_only_and_empty_input() -> None:
    assert Draft.parse(b"Subject: x").to_bytes() == b"Subject: x\r\n\r\n"
    assert Draft.parse(b"").to_bytes() == b"\r\n"


def test_eight_bit_text_survives() -> None:
    raw = "Subject: Grüße\n\nÄÖÜ €\n".encode()
    draft = Draft.parse(raw)
    assert draft.values("subject") == ["Grüße"]
    assert draft.to_bytes() == raw.replace(b"\n", b"\r\n")
