"""The summary line and the progress bar."""

from __future__ import annotations

import io

from onionpost.fetch.progress import Outcome, ProgressBar, bar, summary


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
