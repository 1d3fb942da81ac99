"""What leaves this machine: no Bcc, no client fingerprint, UTC dates, our own Message-ID."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onionpost.sender.hygiene import Stamp, clean, message_id, utc_date
from onionpost.sender.message import Draft

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
STAMP = Stamp(NOW, message_id("abc123", "ours.onion"))
BOOK = {"frank": "frank@f.onion"}
NEOMUTT = (b"Date: Wed, 25 Nov 2026 14:30:00 +0100\n"
           b"From: Ann <ann@a.onion>\n"
           b"To: Bob <bob@b.onion>, frank\n"
           b"Cc: carl@c.onion\n"
           b"Bcc: hidden@h.onion\n"
           b"Subject: hi\n"
           b"Message-ID: <keep@a.onion>\n"
           b"User-Agent: NeoMutt/20230407\n"
           b"X-Mailer: something 1.2\n"
           b"\n"
           b"body\n")


def cleaned(raw: bytes, **options: object) -> Draft:
    draft = Draft.parse(raw)
    clean(draft, STAMP, sender="ann@a.onion", expand=BOOK.get, **options)  # type: ignore[arg-type]  # each test's own options
    return draft


def test_bcc_and_fingerprints_go_the_rest_stays() -> None:
    draft = cleaned(NEOMUTT)
    names = list(draft.names())
    assert "bcc" not in names
    assert "user-agent" not in names and "x-mailer" not in names
    assert b"hidden@h.onion" not in draft.to_bytes()
    assert draft.values("message-id") == ["<keep@a.onion>"]
    assert draft.values("subject") == ["hi"]
    assert draft.values("cc") == ["carl@c.onion"]
    assert draft.body == b"body\n"


def test_keep_headers_keeps_the_fingerprints_but_never_bcc() -> None:
    draft = cleaned(NEOMUTT, keep_headers=True)
    assert draft.values("user-agent") == ["NeoMutt/20230407"]
    assert draft.values("x-mailer") == ["something 1.2"]
    assert draft.values("bcc") == []


def test_local_date_becomes_the_same_instant_in_utc() -> None:
    assert cleaned(NEOMUTT).values("date") == ["Wed, 25 Nov 2026 13:30:00 +0000"]


def test_missing_headers_are_added() -> None:
    draft = cleaned(b"To: bob@b.onion\n\nbody\n", full_name="Ann Smith")
    assert draft.values("date") == ["Wed, 25 Nov 2026 12:00:00 +0000"]
    assert draft.values("message-id") == ["<abc123@ours.onion>"]
    assert draft.values("from") == ["Ann Smith <ann@a.onion>"]


def test_from_without_full_name() -> None:
    assert cleaned(b"\nbody\n").values("from") == ["ann@a.onion"]


def test_address_book_names_in_to_are_expanded() -> None:
    draft = cleaned(NEOMUTT)
    assert draft.addresses("to") == [("Bob", "bob@b.onion"), ("", "frank@f.onion")]


def test_fields_without_names_are_left_alone() -> None:
    raw = b"To: Bob <bob@b.onion>,\n  carl@c.onion\n\nx\n"
    assert cleaned(raw).fields[0] == b"To: Bob <bob@b.onion>,\n  carl@c.onion\n"


def test_bcc_in_any_case_and_resent_bcc_are_removed() -> None:
    draft = cleaned(b"BCC: x@x.onion\nbcc: y@y.onion\nResent-Bcc: z@z.onion\n\nbody\n")
    assert [n for n in draft.names() if "bcc" in n] == []


@pytest.mark.parametrize(("value", "expected"), [
    ("Wed, 25 Nov 2026 14:30:00 +0100", "Wed, 25 Nov 2026 13:30:00 +0000"),
    ("Wed, 25 Nov 2026 01:30:00 -0500", "Wed, 25 Nov 2026 06:30:00 +0000"),
    ("Wed, 25 Nov 2026 13:30:00 -0000", "Wed, 25 Nov 2026 13:30:00 +0000"),
    ("Wed, 25 Nov 2026 13:30:00 GMT", "Wed, 25 Nov 2026 13:30:00 +0000"),
    ("not a date", "Wed, 25 Nov 2026 12:00:00 +0000"),
    (None, "Wed, 25 Nov 2026 12:00:00 +0000"),
])
def test_utc_date(value: str | None, expected: str) -> None:
    assert utc_date(value, NOW) == expected


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1)),
       st.integers(-14 * 60, 14 * 60))
def test_utc_date_keeps_the_instant_and_drops_the_zone(moment: datetime, minutes: int) -> None:
    local = moment.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=minutes)))
    text = utc_date(local.strftime("%a, %d %b %Y %H:%M:%S %z"), NOW)
    assert text.endswith(" +0000")
    assert datetime.strptime(text, "%a, %d %b %Y %H:%M:%S %z") == local
