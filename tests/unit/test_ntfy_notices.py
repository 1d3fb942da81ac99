"""What the notices say: kinds, priorities and tags as ntfy reads them, and no mail text
beyond what summary mode allows, cleaned."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onionpost.events import Notice
from onionpost.maildir import Usage
from onionpost.notifier import notices
from onionpost.quota import Quota

LIMITS = Quota(100, 300_000_000, 80)
USAGE = Usage(42, 12_345_678)


@pytest.mark.parametrize(("size", "text"), [
    (0, "0 B"), (999, "999 B"), (1000, "1 kB"), (12_345, "12.3 kB"), (300_000_000, "300 MB"),
    (1_500_000_000, "1.5 GB")])
def test_sizes_read_like_the_settings(size: int, text: str) -> None:
    assert notices.size_text(size) == text


def test_kinds_priorities_and_tags() -> None:
    made = [notices.paused("p", USAGE, LIMITS), notices.resumed("r", USAGE, LIMITS),
            notices.flood("f", 31, 60, USAGE, LIMITS), notices.new_mail("n", 3, USAGE, LIMITS)]
    assert [(n.kind, n.priority, n.tags) for n in made] == [
        ("paused", 5, ["warning"]), ("resumed", 3, ["white_check_mark"]),
        ("flood", 4, ["rotating_light"]), ("new_mail", 2, ["envelope"])]
    for notice in made:
        assert "42 of 100 messages, 12.3 MB of 300 MB" in notice.message


def test_paused_says_how_mail_comes_back() -> None:
    assert "80 messages and 240 MB" in notices.paused("p", USAGE, LIMITS).message
    manual = notices.paused("p", USAGE, Quota(100, 300_000_000, 0)).message
    assert "onionpost resume" in manual


def test_count_mode_is_a_count() -> None:
    notice = notices.new_mail("n", 3, USAGE, LIMITS)
    assert notice.title == "3 new messages"
    assert notice.message == "Mailbox: 42 of 100 messages, 12.3 MB of 300 MB."
    assert notices.new_mail("n", 1, USAGE, LIMITS).title == "1 new message"


def test_summary_mode_lists_a_few_cleaned_lines() -> None:
    summaries = [("a@x.onion", "Hello\r\nBcc: everyone"), ("b@y.onion", "x" * 200),
                 ("c@z.onion", "three"), ("d@w.onion", "four")]
    lines = notices.new_mail("n", 7, USAGE, LIMITS, summaries).message.splitlines()
    assert lines[0] == "a@x.onion: Hello Bcc: everyone"
    assert lines[1] == "b@y.onion: " + "x" * 39 + "…"
    assert lines[3] == "and 4 more"
    assert len(lines) == 5


@given(st.text())
def test_one_line_leaves_no_control_characters(text: str) -> None:
    cleaned = notices.one_line(text)
    assert cleaned.isprintable()
    assert len(cleaned) <= notices.SUMMARY_FIELD_CHARS
    assert cleaned == cleaned.strip()


@given(st.text(), st.text(), st.integers(1, 5), st.lists(st.text(max_size=20), max_size=3))
def test_notices_survive_the_queue(title: str, message: str, priority: int,
                                   tags: list[str]) -> None:
    notice = Notice("id", "kind", title, message, priority, tags)
    assert Notice.from_dict(notice.to_dict()) == notice
