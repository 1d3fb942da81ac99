"""The Redis outage line: once per outage, and not again for an attempt that began before
Redis came back (redis-py's retries can span a restart)."""

from __future__ import annotations

import logging
import time

import pytest

from onionpost.ingest.publisher import Outage


def downs(caplog: pytest.LogCaptureFixture) -> int:
    return sum("event=redis_down" in record.getMessage() for record in caplog.records)


def test_a_failure_begun_before_the_recovery_is_not_a_new_outage(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="onionpost.events")
    outage = Outage()
    stale = time.monotonic()  # an attempt starts during the outage...
    outage.down(ConnectionError(), time.monotonic())
    outage.down(ConnectionError(), time.monotonic())
    outage.up()  # ...another one sees Redis back...
    outage.down(ConnectionError(), stale)  # ...and the first fails late
    assert downs(caplog) == 1
    outage.down(ConnectionError(), time.monotonic())  # a real new outage
    assert downs(caplog) == 2
