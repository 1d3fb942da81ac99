"""What the guardian reads from the Maildir besides usage: arrival times and header summaries."""

from __future__ import annotations

import re
from email.errors import MessageError
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path

from onionpost import maildir

HEADER_BYTES = 32_768
# The longest From or Subject value handed to the email parser: its address parser is
# quadratic on some input (a 32 KB From took 5.9 s; 512 characters take tens of ms, see
# bench/summary_headers.py), and an address is at most 254 octets (RFC 5321).
FIELD_CHARS = 512
# the parser's own errors, and what it raises besides on hostile input ("(x).y@z": TypeError)
PARSE_ERRORS = (MessageError, ValueError, LookupError, IndexError, TypeError, AttributeError)
_LINE_BREAK = re.compile(r"[\r\n]")
_SPECIALS = r"\s\"(),:;<>@\[\\\]"
_PLAIN_ADDRESS = re.compile(rf"[^{_SPECIALS}]+@[^{_SPECIALS}]+")
# A message encrypted with its Subject hidden (at rest by ingest, docs/pgp.md, or by a
# sender's mail program: neomutt and Thunderbird write the same "...").
HIDDEN_SUBJECT = "..."
SUBJECT_HIDDEN = "(subject hidden: encrypted)"


def arrivals(box: Path) -> list[float]:
    """Delivery times of the messages in new/ and cur/, from their names (no stat)."""
    return [float(arrival) for message in maildir.messages(box)
            if (arrival := message.arrival()) is not None]


def find(box: Path, name: str) -> Path | None:
    """A message by its delivery name: in new/, or in cur/ with flags added by a reader."""
    if "/" in name or name.startswith("."):
        return None
    if (box / "new" / name).is_file():
        return box / "new" / name
    return next((Path(message.path) for message in maildir.messages(box, ("cur",))
                 if message.name == name or message.name.startswith(name + ":")), None)


def sender_and_subject(path: Path) -> tuple[str, str]:
    """The From address (no display name) and the Subject, read from the header only."""
    with path.open("rb") as handle:
        return summary_of(handle.read(HEADER_BYTES))


def summary_of(head: bytes) -> tuple[str, str]:
    """(From address, Subject) of the start of a message, or placeholders for them."""
    fields = raw_fields(head)
    sender = address_of(fields.get("from", ""))
    subject = subject_of(fields.get("subject", ""))
    if subject == HIDDEN_SUBJECT and encrypted(fields.get("content-type", "")):
        subject = SUBJECT_HIDDEN
    return sender or "(no sender)", subject or "(no subject)"


def encrypted(content_type: str) -> bool:
    return content_type.partition(";")[0].strip().lower() == "multipart/encrypted"


def raw_fields(head: bytes) -> dict[str, str]:
    """The first From, Subject and Content-Type of a header block, lower-cased names,
    unfolded, unparsed."""
    fields: dict[str, str] = {}
    for name, value in BytesHeaderParser(policy=default_policy).parsebytes(head).raw_items():
        if name.lower() in ("from", "subject", "content-type"):
            fields.setdefault(name.lower(), _LINE_BREAK.sub("", value).strip())
    return fields


def address_of(value: str) -> str | None:
    """The first address of a From value, when it is a plain local@domain: never a display
    name, nor a name the parser folded into an address ("Your Bank" x@y, <Your Bank>). A
    value over FIELD_CHARS is not parsed at all: a cut one could show a wrong address."""
    if len(value) > FIELD_CHARS:
        return None
    try:
        addresses = default_policy.header_factory("From", value).addresses
    except PARSE_ERRORS:
        return None
    address = addresses[0].addr_spec if addresses else ""
    return address if _PLAIN_ADDRESS.fullmatch(address) else None


def subject_of(value: str) -> str:
    """The Subject decoded from its first FIELD_CHARS characters (only the start is shown),
    cut after a whole word so no half encoded-word shows as raw text."""
    if len(value) > FIELD_CHARS:
        value = value[:FIELD_CHARS].rpartition(" ")[0] or value[:FIELD_CHARS]
    try:
        return str(default_policy.header_factory("Subject", value))
    except PARSE_ERRORS:
        return ""
