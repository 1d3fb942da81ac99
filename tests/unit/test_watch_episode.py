"""The watch's episode logic: one alert per episode, recovery only after it, heals rate-limited."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onionpost.watch import alerts
from onionpost.watch.episode import (
    HEAL_EVERY,
    STAGES,
    Decision,
    Episode,
    Probe,
    clock_skew,
    decide,
    decide_skew,
)

START = 1_800_000_000.0
INTERVAL = 300.0


def run(outcomes: list[str | None], failures: int = 3, interval: float = INTERVAL,
        state: Episode | None = None) -> list[Decision]:
    """Probes every `interval` seconds: None is a success, a stage name a failure."""
    decisions, state = [], state or Episode()
    for number, stage in enumerate(outcomes):
        decision = decide(state, Probe(START + number * interval, stage), failures)
        decisions.append(decision)
        state = decision.state
    return decisions


def test_alerts_once_at_the_nth_failure_then_back_with_the_downtime() -> None:
    decisions = run([None, "introduction", "introduction", "introduction", "introduction",
                     None, None])
    assert [d.unreachable for d in decisions] == [False, False, False, True, False, False,
                                                  False]
    assert [d.back_after for d in decisions] == [None] * 5 + [4 * INTERVAL, None]
    assert decisions[3].state.down_since == START + INTERVAL


def test_a_short_failure_ends_silently() -> None:
    decisions = run(["connection", "connection", None])
    assert not any(d.unreachable or d.back_after is not None or d.heal for d in decisions)
    assert decisions[-1].state == Episode()


def test_first_heal_with_the_alert_then_one_per_30_minutes() -> None:
    decisions = run(["descriptor"] * 20, interval=300)
    heals = [number for number, d in enumerate(decisions) if d.heal]
    assert heals == [2, 8, 14]  # 1800 s = 6 intervals apart
    assert decisions[2].unreachable


def test_a_heal_in_the_last_episode_holds_back_the_next_one() -> None:
    first = run(["descriptor"] * 3 + [None], failures=3)
    assert first[2].heal
    second = run(["descriptor"] * 3, failures=3, state=first[-1].state)
    assert not second[-1].heal  # START + 0..2 intervals: the old heal is 300 s old
    assert second[-1].unreachable


def test_state_survives_json() -> None:
    state = run(["banner"] * 4)[-1].state
    assert Episode.from_dict(state.to_dict()) == state
    assert Episode.from_dict({**state.to_dict(), "unknown": 1}) == state


outcome = st.one_of(st.none(), st.sampled_from(STAGES))


@given(st.lists(outcome, max_size=60), st.integers(1, 6), st.floats(1, 4000))
def test_never_two_alerts_in_one_episode_and_back_only_after_an_alert(
        outcomes: list[str | None], failures: int, interval: float) -> None:
    alerted_in_episode = False
    for decision in run(outcomes, failures, interval):
        if decision.unreachable:
            assert not alerted_in_episode
            alerted_in_episode = True
        if decision.back_after is not None:
            assert alerted_in_episode
            assert decision.back_after >= failures * interval - 1e-6
        if decision.state.failures == 0:
            alerted_in_episode = False


@given(st.lists(outcome, max_size=60), st.integers(1, 6), st.floats(1, 4000))
def test_every_run_of_enough_failures_alerts_exactly_once(
        outcomes: list[str | None], failures: int, interval: float) -> None:
    decisions = run(outcomes, failures, interval)
    runs, current = [], 0
    for stage in [*outcomes, None]:
        if stage is None:
            runs.append(current)
            current = 0
        else:
            current += 1
    assert sum(d.unreachable for d in decisions) == sum(1 for r in runs if r >= failures)


@given(st.lists(outcome, max_size=80), st.integers(1, 6), st.floats(1, 4000))
def test_heals_only_when_sustained_and_rate_limited(
        outcomes: list[str | None], failures: int, interval: float) -> None:
    decisions = run(outcomes, failures, interval)
    heal_times = [START + number * interval for number, d in enumerate(decisions) if d.heal]
    assert all(b - a >= HEAL_EVERY for a, b in itertools.pairwise(heal_times))
    assert all(d.state.failures >= failures for d in decisions if d.heal)


def test_a_clock_jumping_back_does_not_unlock_heals() -> None:
    state = Episode(failures=5, down_since=START, alerted=True, last_heal=START)
    assert not decide(state, Probe(START - 600, "descriptor"), 3).heal
    assert decide(state, Probe(START - HEAL_EVERY - 1, "descriptor"), 3).heal


@pytest.mark.parametrize(("now", "skew"), [
    (1000, 0.0), (2000, 0.0), (3000, 0.0), (900, 100.0), (3100, -100.0)])
def test_clock_skew_against_the_validity_of_the_consensus(now: float, skew: float) -> None:
    assert clock_skew(now, valid_after=1000, valid_until=3000) == skew


@given(st.lists(st.floats(-1e6, 1e6), max_size=50))
def test_one_skew_alert_per_skewed_stretch(skews: list[float]) -> None:
    state, alerts_sent, previous_bad = Episode(), 0, False
    for skew in skews:
        state, alert = decide_skew(state, skew)
        bad = abs(skew) > 60
        assert alert == (bad and not previous_bad)
        alerts_sent += alert
        previous_bad = bad


def test_alert_texts_name_the_stage_the_heal_and_the_downtime() -> None:
    down = alerts.unreachable("x.onion", START, 3, "introduction", "SOCKS 0xf2", "HSPOST ok",
                              "last upload 2 min ago")
    assert "introduction points did not answer" in down.message
    assert "Heal: HSPOST ok" in down.message
    back = alerts.back("x.onion", START, 3 * 3600 + 300)
    assert "3 h 5 min of downtime" in back.message
    assert down.id.removeprefix("watch-down-") == back.id.removeprefix("watch-back-")
    assert "behind" in alerts.clock_skew(START, 90).message
    assert "ahead of" in alerts.clock_skew(START, -90).message


@pytest.mark.parametrize(("seconds", "text"), [
    (5, "5 s"), (60, "1 min"), (3600, "1 h"), (3660, "1 h 1 min"), (90000, "1 d 1 h"),
    (86400, "1 d")])
def test_durations(seconds: float, text: str) -> None:
    assert alerts.duration_text(seconds) == text
