"""The summary line, the progress bar, and server text made safe for a terminal."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onionpost.fetch.progress import (
    Outcome,
    ProgressBar,
    bar,
    clash_warning,
    printable_lines,
    summary,
)


def test_summary_line() -> None:
    assert summary(Outcome(37, 12_400_000)) == "fetched 37 messages, 12.4 MB"
    assert summary(Outcome(1, 2_000)) == "fetched 1 message, 0.0 MB"
    assert summary(Outcome(0, 0, removed=3)) == \
        "fetched 0 messages, 0.0 MB; removed 3 already fetched from the server"
    assert summary(Outcome(2, 0, held_back=5, kept=True)) == (
        "fetched 2 messages, 0.0 MB; left on the server (--keep); "
        "5 more waiting on the server (--limit)")
    assert summary(Outcome(4, 4_000_000), dry_run=True) == "would fetch 4 messages, 4.0 MB"
    assert summary(Outcome(0, 0, skipped=2)) == \
        "fetched 0 messages, 0.0 MB; 2 files with unusual names left on the server"
    assert summary(Outcome(3, 0, clashes=["new/a", "new/b"])) == \
        "fetched 3 messages, 0.0 MB; 2 left on the server: a local file has the name"


def test_clash_warning_names_a_few() -> None:
    assert clash_warning(["new/a"]).startswith("kept the local files named new/a; ")
    assert clash_warning([f"new/{n}" for n in range(50)]).startswith(
        "kept the local files named new/0, new/1, new/2, …; ")


def test_bar() -> None:
    assert bar(5, 10, 500, 1000, width=10) == "[#####.....] 5/10 messages, 0.0 MB of 0.0 MB"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal_only() -> None:
    quiet, tty = io.StringIO(), _Terminal()
    for stream in (quiet, tty):
        progress = ProgressBar(stream, 2, 2_000_000)
        progress.advance(1_000_000)
        progress.advance(1_000_000)
        progress.close()
    assert quiet.getvalue() == ""
    assert tty.getvalue().endswith("2/2 messages, 2.0 MB of 2.0 MB\n")
    assert tty.getvalue().startswith("\r[")


@pytest.mark.parametrize(("text", "lines"), [
    ("ssh: connect to host x port 22: Connection refused\r\n",
     ["ssh: connect to host x port 22: Connection refused"]),
    ("one\n\n  two  \n", ["one", "two"]),
    ("secret\rall good", ["secret", "all good"]),                 # CR cannot overwrite
    ("\x1b]0;title\x07\x1b[2Jred", ["\ufffd]0;title\ufffd\ufffd[2Jred"]),
    ("a\tb", ["a b"]),
    ("\x9b31m\x85next", ["\ufffd31m", "next"]),                     # C1 CSI; NEL is a break
    ("\u202egnp.exe \u2066x\u2069 \u200f", ["\ufffdgnp.exe \ufffdx\ufffd \ufffd"]),
    ("caf\u00e9 \u00e0 \u4e2d", ["caf\u00e9 \u00e0 \u4e2d"]),     # letters stay as they are
    ("\x00\x7f", ["\ufffd\ufffd"]),
    ("", []),
])
def test_printable_lines(text: str, lines: list[str]) -> None:
    assert printable_lines(text) == lines


@given(st.text())
def test_printable_lines_never_hold_a_control_character(text: str) -> None:
    lines = printable_lines(text)
    assert all(line and line.isprintable() for line in lines)
    assert len(lines) <= len(text.splitlines())
