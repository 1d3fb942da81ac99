"""What the guardian reads from the Maildir besides usage: arrival times and header summaries."""

from __future__ import annotations

import os
import re
from email.headerregistry import Address
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path

# Maildir names start with the delivery time in seconds ("1732540000.M123R4.host,S=9").
_ARRIVAL = re.compile(r"^(\d{9,11})\.")
HEADER_BYTES = 32_768


def arrivals(maildir: Path) -> list[float]:
    """Delivery times of the messages in new/ and cur/, from their names (no stat)."""
    times: list[float] = []
    for sub in ("new", "cur"):
        try:
            names = os.listdir(maildir / sub)
        except FileNotFoundError:
            continue
        for name in names:
            match = _ARRIVAL.match(name)
            if match:
                times.append(float(match.group(1)))
    return times


def find(maildir: Path, name: str) -> Path | None:
    """A message by its delivery name: in new/, or in cur/ with flags added by a reader."""
    if "/" in name or name.startswith("."):
        return None
    if (maildir / "new" / name).is_file():
        return maildir / "new" / name
    try:
        return next((maildir / "cur" / entry for entry in os.listdir(maildir / "cur")
                     if entry == name or entry.startswith(name + ":")), None)
    except FileNotFoundError:
        return None


def sender_and_subject(path: Path) -> tuple[str, str]:
    """The From address (no display name) and the Subject, read from the header only."""
    with path.open("rb") as handle:
        head = handle.read(HEADER_BYTES)
    header = BytesHeaderParser(policy=default_policy).parsebytes(head)
    sender = ""
    try:
        addresses: tuple[Address, ...] = header["From"].addresses if header["From"] else ()
        sender = addresses[0].addr_spec if addresses else ""
    except (AttributeError, IndexError, ValueError):
        sender = ""
    try:
        subject = str(header["Subject"] or "")
    except ValueError:
        subject = ""
    return sender or "(no sender)", subject or "(no subject)"
