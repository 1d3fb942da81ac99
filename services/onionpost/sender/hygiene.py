"""What an outgoing message may say about its sender: Bcc removed, no client or host
fingerprints, dates in UTC, and the headers a message needs added when missing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, formataddr, getaddresses, parsedate_to_datetime

from onionpost.sender.message import Draft

HIDDEN_RECIPIENTS = ("bcc", "resent-bcc")
CLIENT_FINGERPRINTS = ("user-agent", "x-mailer")
ADDRESS_FIELDS = ("to", "cc")


@dataclass(frozen=True)
class Stamp:
    """What hygiene adds, decided at the edge: the time and a Message-ID."""

    now: datetime
    message_id: str


def message_id(token: str, domain: str) -> str:
    return f"<{token}@{domain}>"


def utc_date(value: str | None, now: datetime) -> str:
    """A Date header in UTC (+0000): the same instant, without the local timezone."""
    moment = now
    if value:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            moment = now
    if moment.tzinfo is None:  # "-0000": the time is UTC, the zone unknown
        moment = moment.replace(tzinfo=UTC)
    return format_datetime(moment.astimezone(UTC))


def clean(draft: Draft, stamp: Stamp, *, sender: str, full_name: str | None = None,
          keep_headers: bool = False, expand: Callable[[str], str | None] | None = None) -> None:
    """Make `draft` fit to leave this machine (edits it in place)."""
    draft.remove(*HIDDEN_RECIPIENTS)
    if not keep_headers:
        draft.remove(*CLIENT_FINGERPRINTS)
    draft.set("Date", utc_date(draft.first("date"), stamp.now))
    if draft.first("message-id") is None:
        draft.set("Message-ID", stamp.message_id)
    if draft.first("from") is None:
        draft.set("From", formataddr((full_name or "", sender)))
    if expand:
        expand_aliases(draft, expand)


def expand_aliases(draft: Draft, expand: Callable[[str], str | None]) -> None:
    """`To: frank` becomes `To: frank@<onion>` so that the receiver can reply."""
    for name in ADDRESS_FIELDS:
        values = draft.values(name)
        if not values:
            continue
        pairs = getaddresses(values)
        expanded = [(display, _expanded(address, expand)) for display, address in pairs]
        if expanded != pairs:
            draft.set(name.capitalize(), ", ".join(formataddr(pair) for pair in expanded))


def _expanded(address: str, expand: Callable[[str], str | None]) -> str:
    if "@" in address:
        return address
    return expand(address) or address
