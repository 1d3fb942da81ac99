"""The watch's decisions, pure: when the onion is down (alert once), back, due a heal, or skewed.

An episode starts with the first failed probe after a success and ends with the next
success. It alerts once, at the WATCH_FAILURES-th consecutive failure; a success after
that alert announces the recovery with the downtime (measured from the first failure);
a success before it ends the episode silently. Heals run while the failure is sustained
(at least WATCH_FAILURES failures in a row), at most once per HEAL_EVERY seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

HEAL_EVERY = 1800.0  # seconds between two heals, across episodes
MAX_CLOCK_SKEW = 60.0  # seconds
STAGES = ("descriptor", "introduction", "connection", "banner")


@dataclass(frozen=True)
class Probe:
    """One reachability probe: ok, or the stage that failed (one of STAGES)."""

    at: float
    stage: str | None = None  # None: reachable
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.stage is None


@dataclass(frozen=True)
class Episode:
    """What the watch remembers between probes (kept in Redis as JSON)."""

    failures: int = 0  # consecutive failed probes
    down_since: float | None = None  # time of the first of them
    alerted: bool = False  # the unreachable alert of this episode went out
    last_heal: float | None = None  # time of the last heal, any episode
    skew_alerted: bool = False  # the clock-skew alert went out; reset once the clock is fine

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Episode:
        names = cls.__dataclass_fields__
        return cls(**{key: value for key, value in data.items() if key in names})


@dataclass(frozen=True)
class Decision:
    """What one probe changes: the new state, and which alerts and heal are due."""

    state: Episode
    unreachable: bool = False  # send the one "unreachable" alert of this episode
    back_after: float | None = None  # send "back" with this downtime (seconds)
    heal: bool = False  # make tor republish now


def decide(state: Episode, probe: Probe, failures_to_alert: int,
           heal_every: float = HEAL_EVERY) -> Decision:
    """The one decision after a probe."""
    if probe.ok:
        ended = replace(state, failures=0, down_since=None, alerted=False)
        if state.alerted and state.down_since is not None:
            return Decision(ended, back_after=max(0.0, probe.at - state.down_since))
        return Decision(ended)
    failing = replace(state, failures=state.failures + 1,
                      down_since=state.down_since if state.failures else probe.at)
    sustained = failing.failures >= failures_to_alert
    heal = sustained and heal_due(state.last_heal, probe.at, heal_every)
    if heal:
        failing = replace(failing, last_heal=probe.at)
    if sustained and not state.alerted:
        return Decision(replace(failing, alerted=True), unreachable=True, heal=heal)
    return Decision(failing, heal=heal)


def heal_due(last_heal: float | None, now: float, heal_every: float = HEAL_EVERY) -> bool:
    """A clock that jumped back (last_heal in the future) counts as "not due"; the rate
    limit then holds until it catches up, or one heal_every past the jump."""
    if last_heal is None:
        return True
    return now - last_heal >= heal_every or last_heal - now > heal_every


def clock_skew(now: float, valid_after: float, valid_until: float) -> float:
    """Seconds our clock is outside the consensus' validity: positive when we are behind
    (the consensus is not valid yet for us), negative when ahead (it has expired), 0 inside.
    Not fresh-until: clients fetch the next consensus only after fresh-until, by design
    (dir-spec §5.1), so a healthy client holds a consensus past its fresh-until for hours."""
    if now < valid_after:
        return valid_after - now
    if now > valid_until:
        return valid_until - now
    return 0.0


def decide_skew(state: Episode, skew: float,
                limit: float = MAX_CLOCK_SKEW) -> tuple[Episode, bool]:
    """(new state, alert now?): one alert per episode of a skew beyond `limit`."""
    if abs(skew) <= limit:
        return replace(state, skew_alerted=False), False
    return replace(state, skew_alerted=True), not state.skew_alerted
