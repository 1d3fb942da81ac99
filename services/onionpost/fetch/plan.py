"""What one fetch run does with each message the server lists (pure decisions)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from onionpost.fetch.protocol import Entry

Request = tuple[str, Entry]  # ("GET" or "SUM", entry)


@dataclass
class Plan:
    fetch: list[Entry] = field(default_factory=list)     # not here yet: GET, deliver, DEL
    confirm: list[Entry] = field(default_factory=list)   # here already: compare, then DEL
    held_back: int = 0                                    # not fetched this time (--limit)
    ignored: int = 0                                      # kept on the server (--keep)

    @property
    def fetch_bytes(self) -> int:
        return sum(entry.size for entry in self.fetch)


def make_plan(entries: Iterable[Entry], known: Collection[str], *, keep: bool,
              limit: int | None) -> Plan:
    """known: unique names this Maildir has (or had: the fetch record).

    A message we have already is never fetched again: without --keep its server copy is
    deleted once the server's size and hash match ours (this finishes a run that was cut
    between our link and the server's delete). A unique name listed twice is fetched once.
    """
    plan = Plan()
    seen: set[str] = set()
    for entry in entries:
        if entry.unique in seen:
            plan.held_back += 1
            continue
        seen.add(entry.unique)
        if entry.unique in known:
            if keep:
                plan.ignored += 1
            else:
                plan.confirm.append(entry)
        elif limit is not None and len(plan.fetch) >= limit:
            plan.held_back += 1
        else:
            plan.fetch.append(entry)
    return plan


def requests(plan: Plan) -> list[Request]:
    """Confirmations first: they free the server's box without moving any data."""
    return [("SUM", entry) for entry in plan.confirm] + [("GET", entry) for entry in plan.fetch]


def batches(items: list[Request], max_count: int, max_bytes: int) -> list[list[Request]]:
    """Split requests into batches of at most max_count requests and max_bytes to fetch
    (a single larger message makes a batch of its own). One batch = one round trip and one
    directory fsync; its deletes ride along with the next batch's requests."""
    result: list[list[Request]] = []
    current: list[Request] = []
    weight = 0
    for verb, entry in items:
        size = entry.size if verb == "GET" else 0
        if current and (len(current) >= max_count or weight + size > max_bytes):
            result.append(current)
            current, weight = [], 0
        current.append((verb, entry))
        weight += size
    if current:
        result.append(current)
    return result
