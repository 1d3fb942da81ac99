"""The fetch wire protocol: message names, request and reply lines (pure, no I/O).

One ssh channel, client requests and server replies in order, each a line of ASCII:

    server  ONIONPOST-FETCH 1                 greeting
    LIST    -> "<name> <size>" lines, then "END <count> <skipped>"
    GET n   -> "DATA <name> <size>", <size> raw bytes, "<sha256 hex>"   | "GONE <name>"
    SUM n   -> "SUM <name> <size> <sha256 hex>"                        | "GONE <name>"
    DEL n s -> "DELETED <name>"  (s: the size the client has)          | "GONE <name>"
    QUIT    -> "BYE"
    any     -> "ERR <text>" (the server stops)

A name is "new/<unique>" or "cur/<unique>:2,<flags>", exactly as in the server's Maildir.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GREETING = b"ONIONPOST-FETCH 1\n"
MAX_LINE = 1024
_ARITY = {"LIST": 0, "QUIT": 0, "GET": 1, "SUM": 1, "DEL": 2}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# A Maildir unique name, and Maildir's ":2,FLAGS" info for cur/. Nothing else is accepted:
# no slash, no leading dot, no "..", no spaces, nothing that could escape the Maildir.
_NAME = re.compile(r"^(new|cur)/([A-Za-z0-9_][A-Za-z0-9._,=+-]{0,199})(:2,[A-Za-z]{0,26})?$")


class ProtocolError(Exception):
    """The other side said something outside this protocol."""


@dataclass(frozen=True)
class Entry:
    """One message the server has."""

    name: str
    size: int

    @property
    def unique(self) -> str:
        return unique_of(self.name)


def check_name(name: str) -> str:
    """Return name if it is a safe Maildir name, else raise ProtocolError."""
    if not _NAME.match(name) or ".." in name:
        raise ProtocolError(f"unsafe message name {name[:80]!r}")
    return name


def is_valid_name(name: str) -> bool:
    try:
        check_name(name)
    except ProtocolError:
        return False
    return True


def unique_of(name: str) -> str:
    """The part that identifies a message for ever: no subdirectory, no flags."""
    return name.partition("/")[2].partition(":")[0]


def check_digest(text: str) -> str:
    if not _HEX64.match(text):
        raise ProtocolError(f"not a sha256 digest: {text[:80]!r}")
    return text


def _size(text: str) -> int:
    if not text.isdigit() or len(text) > 15:
        raise ProtocolError(f"not a size: {text[:40]!r}")
    return int(text)


def decode(line: bytes) -> list[str]:
    """A received line as words; raise on garbage (binary, overlong, no newline)."""
    if not line.endswith(b"\n"):
        raise ProtocolError("connection closed mid-line" if len(line) < MAX_LINE
                            else "line too long")
    try:
        text = line[:-1].decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError(f"garbage from the other side: {line[:60]!r}") from None
    words = text.split(" ")
    if not text or any(not word or not word.isprintable() for word in words):
        raise ProtocolError(f"garbage from the other side: {line[:60]!r}")
    return words


def parse_list_line(words: list[str]) -> Entry | tuple[int, int]:
    """A LIST reply line: an Entry, or (count, skipped) for the closing END line."""
    if words[0] == "END" and len(words) == 3:
        return _size(words[1]), _size(words[2])
    if len(words) != 2:
        raise ProtocolError(f"bad LIST line: {' '.join(words)[:80]!r}")
    return Entry(check_name(words[0]), _size(words[1]))


def parse_data_header(words: list[str], expected: Entry) -> int | None:
    """The reply to GET: the body size, or None when the message is gone."""
    if words == ["GONE", expected.name]:
        return None
    if len(words) != 3 or words[0] != "DATA":
        raise ProtocolError(f"expected DATA for {expected.name}, got {' '.join(words)[:80]!r}")
    if words[1] != expected.name:
        raise ProtocolError(f"asked for {expected.name}, the server sent {words[1][:80]!r}")
    size = _size(words[2])
    if size != expected.size:
        raise ProtocolError(f"{expected.name}: listed as {expected.size} bytes, sent as {size}")
    return size


def parse_sum(words: list[str], expected: Entry) -> tuple[int, str] | None:
    """The reply to SUM: (size, digest), or None when the message is gone."""
    if words == ["GONE", expected.name]:
        return None
    if len(words) != 4 or words[0] != "SUM" or words[1] != expected.name:
        raise ProtocolError(f"expected SUM for {expected.name}, got {' '.join(words)[:80]!r}")
    return _size(words[2]), check_digest(words[3])


def parse_deleted(words: list[str], name: str) -> bool:
    """The reply to DEL: True when deleted, False when it was already gone."""
    if words == ["DELETED", name]:
        return True
    if words == ["GONE", name]:
        return False
    raise ProtocolError(f"expected DELETED {name}, got {' '.join(words)[:80]!r}")


def server_error(words: list[str]) -> str | None:
    """The server's own error text, when the line is an ERR."""
    if words[0] != "ERR":
        return None
    return " ".join(words[1:]) or "unspecified error"


def request(verb: str, *args: object) -> bytes:
    return " ".join([verb, *map(str, args)]).encode("ascii") + b"\n"


def parse_request(line: bytes) -> tuple[str, list[str]]:
    """A client request as (verb, arguments); names are checked here, once."""
    words = decode(line)
    verb, args = words[0], words[1:]
    if _ARITY.get(verb) != len(args):
        raise ProtocolError(f"unknown request {' '.join(words)[:80]!r}")
    if args:
        check_name(args[0])
    if verb == "DEL":
        _size(args[1])
    return verb, args
