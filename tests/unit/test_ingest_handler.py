"""The handler's pure decisions: which local parts we take, what may enter a header."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onionpost.ingest.handler import MAX_LOCAL_PART, header_safe, valid_local_part


@pytest.mark.parametrize("local", ["owner", "Owner.Name+tag", "../../x", "bjørn", "a" * 64])
def test_ordinary_and_odd_but_harmless_local_parts(local: str) -> None:
    assert valid_local_part(local)


@pytest.mark.parametrize("local", ["", "a\x00b", "bell\x07", "esc\x1b", "del\x7f", "a" * 65,
                                   "ø" * 33, "bad\udcff", "nl\n", "cr\r"])
def test_empty_control_overlong_and_undecodable_local_parts(local: str) -> None:
    assert not valid_local_part(local)


@given(st.text(max_size=80))
def test_accepted_local_parts_are_short_and_printable(local: str) -> None:
    if valid_local_part(local):
        assert 0 < len(local.encode("utf-8", "surrogateescape")) <= MAX_LOCAL_PART
        assert all(ord(char) >= 0x20 and ord(char) != 0x7F for char in local)


@given(st.text(max_size=80))
def test_header_text_is_printable_ascii_or_nothing(text: str) -> None:
    safe = header_safe(text)
    assert safe in (text, "")
    assert "\r" not in safe and "\n" not in safe
    assert safe.isascii()
