"""The outgoing message as sendmail reads it: raw header fields we can edit one by one and a
body we never touch (no re-encoding, no re-folding of headers we did not change)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import getaddresses
from typing import BinaryIO

_FIELD_START = re.compile(rb"^[!-9;-~]+:")
_NEWLINE = re.compile(rb"\r?\n")


def read(stream: BinaryIO, dots_end_message: bool) -> bytes:
    """Everything on stdin, or up to a line holding a lone "." (as sendmail does without -i)."""
    if not dots_end_message:
        return stream.read()
    lines = []
    for line in stream:
        if line.rstrip(b"\r\n") == b".":
            break
        lines.append(line)
    return b"".join(lines)


@dataclass
class Draft:
    fields: list[bytes] = field(default_factory=list)  # each a whole field, folded lines kept
    body: bytes = b""

    @classmethod
    def parse(cls, raw: bytes) -> Draft:
        lines = raw.splitlines(keepends=True)
        if lines and lines[0].startswith(b"From "):  # an mbox separator, not a header
            lines.pop(0)
        draft = cls()
        for index, line in enumerate(lines):
            if line[:1] in (b" ", b"\t") and draft.fields:
                draft.fields[-1] += line
            elif _FIELD_START.match(line):
                draft.fields.append(line if line.endswith(b"\n") else line + b"\n")
            else:  # the blank separator line, or a body that starts without one
                start = index + 1 if not line.strip(b"\r\n") else index
                draft.body = b"".join(lines[start:])
                break
        return draft

    def values(self, name: str) -> list[str]:
        """Unfolded values of every field called `name` (case-insensitive)."""
        return [_value(raw) for raw in self.fields if _name(raw) == name.lower()]

    def first(self, name: str) -> str | None:
        found = self.values(name)
        return found[0] if found else None

    def addresses(self, *names: str) -> list[tuple[str, str]]:
        """(display name, address) pairs of the given address fields, in order."""
        return getaddresses([value for name in names for value in self.values(name)])

    def remove(self, *names: str) -> None:
        wanted = {name.lower() for name in names}
        self.fields = [raw for raw in self.fields if _name(raw) not in wanted]

    def set(self, name: str, value: str) -> None:
        """Replace the first `name` field in place (dropping others) or append one."""
        new = f"{name}: {value}\n".encode("utf-8", "surrogateescape")
        positions = [i for i, raw in enumerate(self.fields) if _name(raw) == name.lower()]
        if not positions:
            self.fields.append(new)
            return
        self.fields[positions[0]] = new
        for index in reversed(positions[1:]):
            del self.fields[index]

    def names(self) -> Iterable[str]:
        return (_name(raw) for raw in self.fields)

    def to_bytes(self) -> bytes:
        """The message with CRLF line ends, as SMTP DATA wants it (smtplib sends bytes as is)."""
        text = b"".join(self.fields) + b"\n" + self.body
        return _NEWLINE.sub(b"\r\n", text)


def _name(raw: bytes) -> str:
    return raw.split(b":", 1)[0].decode("ascii").lower()


def _value(raw: bytes) -> str:
    text = raw.split(b":", 1)[1].decode("utf-8", "surrogateescape")
    return re.sub(r"\r?\n(?=[ \t])", "", text).strip()
