"""The message content of one DATA command, taken a received block at a time.

aiosmtpd reads DATA one line at a time (an await per line, ~140 for a 10 KB message); this
does the same job on whole blocks with bytes methods, with the same rules (RFC 5321 4.5.2,
aiosmtpd 1.4.6): lines end with CRLF only, so a bare CR or LF never ends the content (no
SMTP smuggling); the content ends at the first line that is exactly "."; a leading dot is
removed from every other line; a line longer than the line limit or content longer than the
size limit makes the whole message refused, but only once its end has been read.
The content is handed on as it comes (drain): a DataPhase keeps only what was not taken yet.
"""

from __future__ import annotations

from onionpost.ingest.replies import LINE_TOO_LONG, TOO_MUCH_DATA


class DataPhase:
    def __init__(self, size_limit: int | None, line_limit: int) -> None:
        self.size_limit = size_limit
        self.line_limit = line_limit
        self.parts: list[bytes] = []  # unstuffed content not drained yet
        self.buffered = 0  # bytes in parts
        self.size = 0  # bytes received, as sent (before dot-unstuffing)
        self.error: str | None = None
        self.done = False
        self.surplus = b""  # what came after the end: the client's next commands
        self._line = b""  # the unfinished line; it always starts at the start of a line

    def feed(self, block: bytes) -> bool:
        """Take received bytes; True once the end of the content has been seen."""
        data = self._line + block
        found = -2 if data.startswith(b".\r\n") else data.find(b"\r\n.\r\n")
        if found != -1:  # the end: the lines before it, then what follows it
            self._take(data[:found + 2])
            self.surplus, self.done, self._line = data[found + 5:], True, b""
            return True
        last = data.rfind(b"\r\n")
        end = last + 2 if last >= 0 else 0
        self._take(data[:end])
        self._line = data[end:]
        if len(self._line) > self.line_limit:  # no need to keep it: it is refused anyway
            self._fail(LINE_TOO_LONG)
            # A stand-in that is not ".", keeping a final CR that may start CRLF.
            self._line = b"x" + self._line[-1:]
        return False

    def content(self) -> bytes:
        return b"".join(self.parts)

    def drain(self) -> list[bytes]:
        """The content received since the last drain (nothing after an error)."""
        parts, self.parts, self.buffered = self.parts, [], 0
        return parts

    def _take(self, lines: bytes) -> None:
        """Complete lines, each ending with CRLF."""
        if not lines:
            return
        self.size += len(lines)
        if self.error is not None:
            return
        over_size = self.size_limit and self.size > self.size_limit
        longest = max(map(len, lines.split(b"\r\n"))) + 2
        if over_size or longest > self.line_limit:
            self._fail_in_order(lines)
            return
        unstuffed = lines.replace(b"\r\n.", b"\r\n")
        if unstuffed.startswith(b"."):
            unstuffed = unstuffed[1:]
        self.parts.append(unstuffed)
        self.buffered += len(unstuffed)

    def _fail_in_order(self, lines: bytes) -> None:
        """Which limit the lines broke first, as a line-by-line reader would tell."""
        size = self.size - len(lines)
        for line in lines.split(b"\r\n")[:-1]:
            size += len(line) + 2
            if self.size_limit and size > self.size_limit:
                self._fail(TOO_MUCH_DATA)
                return
            if len(line) + 2 > self.line_limit:
                self._fail(LINE_TOO_LONG)
                return

    def _fail(self, error: str) -> None:
        if self.error is None:
            self.error = error
        self.drain()
