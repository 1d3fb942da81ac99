"""The guardian's decisions, pure: pause past a limit, resume under the marks, warn of floods."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from onionpost.events import Notice
from onionpost.maildir import Usage
from onionpost.notifier import notices
from onionpost.quota import Quota

GUARDIAN, OWNER = "guardian", "owner"


@dataclass(frozen=True)
class Pause:
    """Why ingest is paused, by whom, since when (epoch seconds). Stored as a Redis hash."""

    reason: str
    by: str
    since: float

    @property
    def id(self) -> str:
        return str(round(self.since * 1000))

    def to_fields(self) -> dict[str, str]:
        return {"reason": self.reason, "by": self.by, "since": f"{self.since:.3f}"}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Pause | None:
        """None for an empty hash (not paused). A hash we did not write (no `by`) counts as
        a pause by the owner: we never lift a pause we cannot explain."""
        if not fields:
            return None
        try:
            since = float(fields.get("since", "0"))
        except ValueError:
            since = 0.0
        return cls(fields.get("reason", "unknown"), fields.get("by", OWNER), since)


@dataclass(frozen=True)
class FloodRule:
    messages: int
    seconds: int


@dataclass(frozen=True)
class Plan:
    """What one recount changes. Empty when nothing changes."""

    pause: Pause | None = None
    resume: bool = False
    flood_start: bool = False
    flood_continue: bool = False
    notices: list[Notice] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(self.pause or self.resume or self.flood_start or self.flood_continue)

    @property
    def outcome(self) -> str:
        if self.pause:
            return "paused"
        if self.resume:
            return "resumed"
        return "flood" if self.flood_start else "ok"


def limit_reached(usage: Usage, limits: Quota) -> str | None:
    """'messages' or 'bytes' when the mailbox is full on that count (ingest then refuses
    every message anyway: pausing makes it refuse at the greeting, cheaply)."""
    return limits.reached(usage)


def under_resume_marks(usage: Usage, limits: Quota) -> bool:
    """Below the marks and below the limits (a mark of 100 % must not resume a full box)."""
    return (limits.resume_percent > 0 and usage.messages <= limits.resume_messages
            and usage.bytes <= limits.resume_bytes and limit_reached(usage, limits) is None)


def recent_count(arrivals: Iterable[float], now: float, seconds: int) -> int:
    """Messages that arrived in the last `seconds` (arrival times in epoch seconds)."""
    since = now - seconds
    return sum(1 for arrival in arrivals if arrival > since)


def plan(usage: Usage, pause: Pause | None, flooding: bool, recent: int, limits: Quota,
         rule: FloodRule, now: float) -> Plan:
    """The one decision of a recount. `flooding`: a flood episode is already open;
    `recent`: messages that arrived within rule.seconds."""
    if pause is None:
        reason = limit_reached(usage, limits)
        if reason:
            new = Pause(reason, GUARDIAN, round(now, 3))
            return Plan(pause=new, notices=[notices.paused(f"paused-{new.id}", usage, limits)])
        if recent >= rule.messages:
            if flooding:
                return Plan(flood_continue=True)
            return Plan(flood_start=True, notices=[notices.flood(
                f"flood-{int(now * 1000)}", recent, rule.seconds, usage, limits)])
        return Plan()
    if pause.by == GUARDIAN and under_resume_marks(usage, limits):
        return Plan(resume=True, notices=[notices.resumed(f"resumed-{pause.id}", usage, limits)])
    return Plan()
