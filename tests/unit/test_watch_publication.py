"""Reading tor's consensus times: a tor that has not bootstrapped yet must not stop the watch."""

from __future__ import annotations

import pytest

from onionpost.watch.publication import validity


def test_consensus_times_are_read_as_utc_epoch_seconds() -> None:
    assert validity("2026-11-30 16:00:00", "2026-11-30 19:00:00") == (1796054400.0,
                                                                      1796065200.0)


@pytest.mark.parametrize(("after", "until"), [
    ("", ""),  # tor answers GETINFO consensus/valid-* with empty values before bootstrap
    ("2026-11-30 16:00:00", ""), ("garbage", "2026-11-30 19:00:00"),
])
def test_no_consensus_yet_is_no_validity(after: str, until: str) -> None:
    assert validity(after, until) is None
