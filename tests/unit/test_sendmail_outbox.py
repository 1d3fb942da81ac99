"""The outbox's decisions (backoff, expiry, what a run leaves queued), its files, and the
bounce it writes."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from pathlib import Path

import pytest

from onionpost.sender import bounce, invocation, outbox
from onionpost.sender.delivery import Result, may_commit
from onionpost.sender.outbox import Entry, Outbox
from onionpost.settings import Settings, parse_duration

A, B = "a" * 56 + ".onion", "b" * 56 + ".onion"


def entry(**changes: object) -> Entry:
    base = Entry("1-ab", f"me@{A}", {A: [f"x@{A}"], B: [f"y@{B}", f"z@{B}"]},
                 first_queued=1000.0, attempts=1, next_attempt=1300.0,
                 last_error={A: "451 later", B: "unreachable"})
    return Entry(**{**base.__dict__, **changes})


@pytest.mark.parametrize(("attempts", "delay"), [
    (1, 300), (2, 600), (3, 1200), (5, 4800), (6, 7200), (30, 7200), (0, 300)])
def test_backoff_doubles_from_five_minutes_up_to_two_hours(attempts: int, delay: float) -> None:
    assert outbox.backoff(attempts) == delay


def test_due_and_expired() -> None:
    queued = entry()
    assert not outbox.due(queued, 1299.0)
    assert outbox.due(queued, 1300.0)
    assert outbox.due(queued, 1001.0, flush=True)
    assert not outbox.expired(queued, 1000.0 + 86400 - 1, 86400)
    assert outbox.expired(queued, 1000.0 + 86400, 86400)


def test_only_temporary_failures_without_held_recipients_are_queued() -> None:
    sent = Result(f"x@{A}", "sent", "250")
    later = Result(f"y@{B}", "temporary", "451", 75)
    held = Result(f"x@{A}", "held", "not sent", 0)
    assert outbox.queueable([sent, later])
    assert not outbox.queueable([sent])
    assert not outbox.queueable([held, later])


def test_new_entry_keeps_the_temporary_recipients_by_domain() -> None:
    results = [Result(f"x@{A}", "sent", "250"), Result(f"y@{B}", "temporary", "timed out", 75),
               Result(f"z@{B}", "temporary", "timed out", 75)]
    queued = outbox.new_entry(f"me@{A}", results, 5000.0)
    assert queued.recipients == {B: [f"y@{B}", f"z@{B}"]}
    assert queued.last_error == {B: "timed out"}
    assert (queued.attempts, queued.first_queued, queued.next_attempt) == (1, 5000.0, 5300.0)
    assert Entry.from_json(queued.to_json()) == queued


def test_after_attempt_drops_the_sent_returns_the_refused_and_backs_off() -> None:
    results = [Result(f"x@{A}", "sent", "250 ok"), Result(f"y@{B}", "permanent", "550 no", 67),
               Result(f"z@{B}", "temporary", "421 busy", 75)]
    updated, refused = outbox.after_attempt(entry(), results, 2000.0)
    assert refused == [results[1]]
    assert updated is not None
    assert updated.recipients == {B: [f"z@{B}"]}
    assert updated.last_error == {B: "421 busy"}
    assert (updated.attempts, updated.next_attempt) == (2, 2600.0)
    assert updated.first_queued == 1000.0


def test_after_attempt_with_nobody_left_ends_the_entry() -> None:
    results = [Result(f"x@{A}", "sent", "250"), Result(f"y@{B}", "permanent", "550", 67)]
    assert outbox.after_attempt(entry(), results, 2000.0) == (None, [results[1]])


@pytest.mark.parametrize(("seconds", "text"), [
    (45, "45 s"), (300, "5 min"), (7200, "2 h"), (7800, "2 h 10 min"), (432000, "5 d"),
    (273600, "3 d 4 h"), (-3, "0 s")])
def test_span(seconds: float, text: str) -> None:
    assert outbox.span(seconds) == text


def test_files_are_written_replaced_and_removed(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox")
    assert box.entries() == []
    queued = entry()
    box.add(queued, b"Subject: x\n\nbody\n")
    assert box.entries() == [queued]
    assert box.message(queued.id) == b"Subject: x\n\nbody\n"
    assert list((tmp_path / "outbox" / "tmp").iterdir()) == []
    later = entry(attempts=4)
    box.save(later)
    assert box.entries() == [later]
    box.remove(queued.id)
    assert box.entries() == [] and list((tmp_path / "outbox" / "new").iterdir()) == []


def test_a_message_without_state_is_removed_once_old(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.add(entry(), b"kept")
    (tmp_path / "new" / "2-cd.eml").write_bytes(b"orphan")
    assert box.remove_orphans(0.0) == 0  # young: a sendmail may be writing its state now
    far_future = (tmp_path / "new" / "2-cd.eml").stat().st_mtime + outbox.ORPHAN_AGE + 1
    assert box.remove_orphans(far_future) == 1
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["1-ab.eml", "1-ab.json"]


def test_an_unreadable_state_is_skipped_and_kept(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.add(entry(), b"kept")
    (tmp_path / "new" / "2-cd.json").write_bytes(b"{not json")
    assert [queued.id for queued in box.entries()] == ["1-ab"]
    assert (tmp_path / "new" / "2-cd.json").exists()


def test_the_lock_admits_one_run(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    with box.lock(), pytest.raises(outbox.BusyError), Outbox(tmp_path).lock():
        pass
    with box.lock():  # released
        pass


def test_with_the_queue_temporary_failures_do_not_hold_the_others() -> None:
    later = Result(f"y@{B}", "temporary", "451", 75)
    refused = Result(f"y@{B}", "permanent", "550", 67)
    assert may_commit([later], partial=False, queue=True)
    assert not may_commit([later], partial=False)
    assert not may_commit([later, refused], partial=False, queue=True)


def test_queue_flag_and_settings() -> None:
    assert invocation.parse(["-oi", "--queue", "x@y"]).queue
    assert not invocation.parse(["-oi", "x@y"]).queue
    assert Settings().send_queue == "off"
    assert Settings(queue_lifetime="12h").queue_lifetime == 43200
    assert parse_duration("5d") == 432000 and parse_duration("90") == 90
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_bounce_names_the_failed_recipients_and_carries_the_headers() -> None:
    original = b"From: me@x\r\nSubject: plans\r\nTo: y@z\r\n\r\nsecret body\r\n"
    raw = bounce.build(original, "me@x", [bounce.Failure("y@z", "550 5.1.1 no such user")],
                       A, datetime(2026, 11, 25, 12, 0, tzinfo=UTC), "refused")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["To"] == "me@x" and parsed["Subject"] == "Undelivered: plans"
    assert parsed["Date"].endswith("+0000") and parsed["Message-ID"].endswith(f"@{A}>")
    text, headers = list(parsed.iter_parts())
    assert "y@z: 550 5.1.1 no such user" in text.get_content()
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Subject: plans" in headers.get_content()
    assert b"secret body" not in raw


def test_bounce_is_delivered_into_the_maildir(tmp_path: Path) -> None:
    path = bounce.deliver_local(tmp_path / "inbox", b"Subject: x\n\nbounce\n")
    assert path.parent == tmp_path / "inbox" / "new"
    assert path.read_bytes() == b"Subject: x\n\nbounce\n"
    assert list((tmp_path / "inbox" / "tmp").iterdir()) == []
