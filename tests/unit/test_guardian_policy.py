"""The guardian's decisions: pause at a limit, resume under the marks, floods, who paused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onionpost.guardian.policy import GUARDIAN, OWNER, FloodRule, Pause, Plan, plan, recent_count
from onionpost.maildir import Usage
from onionpost.notifier.notices import DEFAULT, HIGH, URGENT
from onionpost.quota import Quota

LIMITS = Quota(max_messages=100, max_bytes=1_000_000, resume_percent=80)
RULE = FloodRule(messages=30, seconds=60)
NOW = 1_800_000_000.0
BY_GUARDIAN = Pause("messages", GUARDIAN, NOW - 60)
BY_OWNER = Pause("by hand", OWNER, NOW - 60)


def decide(messages: int, size: int = 0, pause: Pause | None = None, flooding: bool = False,
           recent: int = 0, limits: Quota = LIMITS) -> Plan:
    return plan(Usage(messages, size), pause, flooding, recent, limits, RULE, NOW)


@pytest.mark.parametrize(("messages", "size", "reason"), [
    (100, 0, "messages"), (150, 0, "messages"), (1, 1_000_000, "bytes"),
    (100, 1_000_000, "messages")])
def test_reaching_a_limit_pauses_with_one_urgent_alert(messages: int, size: int,
                                                        reason: str) -> None:
    decision = decide(messages, size)
    assert decision.pause == Pause(reason, GUARDIAN, NOW)
    [alert] = decision.notices
    assert (alert.kind, alert.priority, alert.tags) == ("paused", URGENT, ["warning"])
    assert alert.id == f"paused-{decision.pause.id}"
    assert f"{messages} of 100 messages" in alert.message


@pytest.mark.parametrize(("messages", "size"), [(0, 0), (99, 999_999), (50, 10)])
def test_below_the_limits_nothing_happens(messages: int, size: int) -> None:
    assert decide(messages, size) == Plan()


@pytest.mark.parametrize(("messages", "size", "resumes"), [
    (80, 800_000, True), (0, 0, True), (81, 0, False), (0, 800_001, False), (99, 0, False)])
def test_a_guardian_pause_ends_at_the_resume_marks(messages: int, size: int,
                                                   resumes: bool) -> None:
    decision = decide(messages, size, BY_GUARDIAN)
    assert decision.resume is resumes
    if resumes:
        [notice] = decision.notices
        assert (notice.kind, notice.priority, notice.id) == (
            "resumed", DEFAULT, f"resumed-{BY_GUARDIAN.id}")
    else:
        assert decision == Plan()


@given(st.integers(0, 10**6), st.integers(0, 10**12), st.booleans(), st.integers(0, 10**4))
def test_a_pause_by_the_owner_is_never_lifted_or_replaced(
        messages: int, size: int, flooding: bool, recent: int) -> None:
    assert decide(messages, size, BY_OWNER, flooding, recent) == Plan()


@given(st.integers(0, 10**6), st.integers(0, 10**12))
def test_resume_percent_zero_never_resumes(messages: int, size: int) -> None:
    limits = Quota(100, 1_000_000, 0)
    assert not decide(messages, size, BY_GUARDIAN, limits=limits).resume


@given(st.integers(0, 10**6), st.integers(0, 10**12), st.booleans(), st.integers(0, 10**4),
       st.sampled_from([None, BY_GUARDIAN, BY_OWNER]), st.integers(0, 100))
def test_every_decision_is_one_transition_with_at_most_one_notice(
        messages: int, size: int, flooding: bool, recent: int, pause: Pause | None,
        percent: int) -> None:
    limits = Quota(100, 1_000_000, percent)
    decision = decide(messages, size, pause, flooding, recent, limits)
    changes = [decision.pause is not None, decision.resume, decision.flood_start,
               decision.flood_continue]
    assert sum(changes) <= 1
    assert len(decision.notices) <= 1
    assert (decision.pause is not None) <= (pause is None)  # never pause twice
    assert decision.resume <= (pause is not None and pause.by == GUARDIAN)
    if decision.resume:  # hysteresis: never resume at or over a limit
        assert messages < 100 and size < 1_000_000


def test_a_flood_below_the_limits_warns_once_and_does_not_pause() -> None:
    first = decide(40, recent=30)
    assert first.flood_start and first.pause is None
    [warning] = first.notices
    assert (warning.kind, warning.priority) == ("flood", HIGH)
    assert "30 messages arrived within 60 seconds" in warning.message
    later = decide(60, recent=50, flooding=True)
    assert later == Plan(flood_continue=True)
    assert decide(60, recent=29) == Plan()


def test_limits_win_over_floods_and_a_paused_box_gets_no_flood_warning() -> None:
    assert decide(100, recent=100).pause is not None
    assert decide(100, recent=100).notices[0].kind == "paused"
    assert decide(100, recent=100, pause=BY_GUARDIAN) == Plan()


def test_recent_count_uses_a_sliding_window() -> None:
    arrivals = [NOW - 120, NOW - 60, NOW - 59.9, NOW - 1, NOW]
    assert recent_count(arrivals, NOW, 60) == 3
    assert recent_count([], NOW, 60) == 0


def test_pause_records_round_trip_and_foreign_records_count_as_the_owners() -> None:
    pause = Pause("bytes", GUARDIAN, 1_800_000_000.123)
    assert Pause.from_fields(pause.to_fields()) == pause
    assert Pause.from_fields(pause.to_fields()).id == pause.id == "1800000000123"
    assert Pause.from_fields({}) is None
    assert Pause.from_fields({"reason": "x"}) == Pause("x", OWNER, 0.0)
    assert Pause.from_fields({"by": GUARDIAN, "since": "garbage"}).since == 0.0
