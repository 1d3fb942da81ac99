"""What a session may waste: command line limits checked before parsing, and which commands
are junk (Postfix's smtpd_junk_command_limit: commands that bring no message closer)."""

from __future__ import annotations

from typing import NamedTuple

from onionpost.ingest.replies import MAIL_TOO_LONG, RCPT_TOO_LONG

# RFC 5321 4.5.3.1.4: 512 octets per command line. RFC 1870 (SIZE=) adds 26 to MAIL's and
# RFC 6531 (SMTPUTF8) 10; both are advertised in every EHLO reply.
COMMAND_LINE_LIMIT = 512
MAIL_LINE_LIMIT = COMMAND_LINE_LIMIT + 26 + 10
# RFC 5321 4.5.3.1.3: a path is at most 256 octets, brackets included.
PATH_LIMIT = 256


class CommandLimits(dict[str, int]):
    """One session's `command_size_limits` for aiosmtpd, which reads it after EHLO. Its own
    is one class-level defaultdict for every session: each name looked up stayed in it for
    good, and each EHLO added SIZE's and SMTPUTF8's allowances to MAIL's limit once more.
    Here unknown names are never stored and those additions are counted once, from the
    start."""

    def __init__(self) -> None:
        super().__init__(MAIL=MAIL_LINE_LIMIT)

    def __missing__(self, name: str) -> int:
        return COMMAND_LINE_LIMIT

    def __setitem__(self, name: str, value: int) -> None:
        """aiosmtpd's `limits["MAIL"] += 26` at every EHLO: already counted."""


def oversized_address_line(line: bytes, extended: bool) -> str | None:
    """The refusal of a MAIL or RCPT line too long to be a valid command, or None. Checked
    before parsing: the email package's address parser is quadratic on some inputs."""
    verb = line[:5].upper()
    length = len(line.rstrip(b"\r\n"))
    if verb == b"MAIL " and length > (MAIL_LINE_LIMIT if extended else COMMAND_LINE_LIMIT):
        return MAIL_TOO_LONG
    if verb == b"RCPT " and length > COMMAND_LINE_LIMIT:
        return RCPT_TOO_LONG
    return None


class Progress(NamedTuple):
    """How far a session has come towards delivering a message (taken twice per command:
    a tuple is cheap to make)."""

    greeted: bool = False
    tls: bool = False
    sender: bool = False
    recipients: int = 0


def delivered(command: str, before: Progress, after: Progress) -> bool:
    """DATA took the transaction's content (whatever the answer: the client sent it all)."""
    return command == "DATA" and before.recipients > 0 and after.recipients == 0


def advanced(command: str, before: Progress, after: Progress) -> bool:
    """Did the command bring a message closer? NOOP, RSET, HELP, VRFY, a second EHLO or
    HELO, and every refused command do not."""
    return (command == "QUIT" or delivered(command, before, after)
            or after.greeted > before.greeted or after.tls > before.tls
            or after.sender > before.sender or after.recipients > before.recipients)


class JunkCount:
    """Junk commands of one session; a delivered message starts the count again."""

    __slots__ = ("count", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def command(self, name: str, before: Progress, after: Progress) -> None:
        if delivered(name, before, after):
            self.count = 0
        elif not advanced(name, before, after):
            self.count += 1

    def refused(self) -> None:
        """A line refused before it reached a command."""
        self.count += 1

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit
