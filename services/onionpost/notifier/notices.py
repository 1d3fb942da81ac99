"""What we tell the owner: one Notice (events.py) per event, rendered from counts and limits
only."""

from __future__ import annotations

from onionpost.events import Notice
from onionpost.maildir import Usage
from onionpost.quota import Quota

# ntfy priorities (https://docs.ntfy.sh/publish/#message-priority) and tags (emoji names).
URGENT, HIGH, DEFAULT, LOW = 5, 4, 3, 2
SUMMARY_LINES = 3
SUMMARY_FIELD_CHARS = 40


def size_text(size: int) -> str:
    """Decimal units, as the settings take them: 950 B, 12.3 kB, 300 MB."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            break
        value /= 1000
    return f"{value:.0f} {unit}" if unit == "B" or value.is_integer() else f"{value:.1f} {unit}"


def usage_text(usage: Usage, limits: Quota) -> str:
    return (f"{usage.messages} of {limits.max_messages} messages, "
            f"{size_text(usage.bytes)} of {size_text(limits.max_bytes)}")


def paused(notice_id: str, usage: Usage, limits: Quota) -> Notice:
    if limits.resume_percent:
        after = (f"Mail is accepted again once the mailbox is down to "
                 f"{limits.resume_messages} messages and {size_text(limits.resume_bytes)}: "
                 f"fetch your mail.")
    else:
        after = "Fetch your mail, then run `onionpost resume`."
    return Notice(notice_id, "paused", "Mailbox full: new mail refused",
                  f"The mailbox reached its limit ({usage_text(usage, limits)}). "
                  f"Senders are told to try again later. {after}", URGENT, ["warning"])


def resumed(notice_id: str, usage: Usage, limits: Quota) -> Notice:
    return Notice(notice_id, "resumed", "Mail accepted again",
                  f"The mailbox is below its resume mark ({usage_text(usage, limits)}).",
                  DEFAULT, ["white_check_mark"])


def flood(notice_id: str, recent: int, seconds: int, usage: Usage, limits: Quota) -> Notice:
    return Notice(notice_id, "flood", "Unusual amount of mail",
                  f"{recent} messages arrived within {seconds} seconds "
                  f"({usage_text(usage, limits)}). Mail is still accepted.",
                  HIGH, ["rotating_light"])


def one_line(text: str, limit: int = SUMMARY_FIELD_CHARS) -> str:
    """Attacker text made displayable: no control characters, one line, bounded."""
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def new_mail(notice_id: str, count: int, usage: Usage, limits: Quota,
             summaries: list[tuple[str, str]] | None = None) -> Notice:
    """count mode: "3 new messages" and the mailbox usage, nothing from the mail itself.
    summary mode (summaries given): also the sender address and the start of the subject of
    the newest few, cleaned; ntfy stores what it gets, hence not the default."""
    title = "1 new message" if count == 1 else f"{count} new messages"
    lines = [f"{one_line(sender)}: {one_line(subject)}" for sender, subject
             in (summaries or [])[:SUMMARY_LINES]]
    if lines and count > len(lines):
        lines.append(f"and {count - len(lines)} more")
    lines.append(f"Mailbox: {usage_text(usage, limits)}.")
    return Notice(notice_id, "new_mail", title, "\n".join(lines), LOW, ["envelope"])
