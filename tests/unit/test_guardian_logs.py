"""rq's own log lines, as our workers emit them: one line, no traceback, no Redis address."""

from __future__ import annotations

import logging
import sys

from onionpost.worker import OneLine


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ConnectionError("boom")
        except ConnectionError:
            exc_info = sys.exc_info()
    return logging.LogRecord("rq.worker", logging.ERROR, __file__, 1, message, args, exc_info)


def test_tracebacks_become_one_line_with_the_error_type() -> None:
    entry = record("Scheduler [PID %s] raised an exception.\n%s", 42, "Traceback ...\nmore",
                   exc=True)
    assert OneLine().filter(entry)
    text = logging.Formatter("%(message)s").format(entry)
    assert text == 'event=rq text="Scheduler [PID 42] raised an exception. error=ConnectionError"'


def test_redis_addresses_are_not_logged() -> None:
    entry = record("could not connect: Error 111 connecting to 10.0.3.7:6379. refused")
    OneLine().filter(entry)
    assert "10.0.3.7" not in entry.getMessage()
    assert "6379" not in entry.getMessage()
    entry = record("Error -2 connecting to redis-host.internal:6379. Name unknown")
    OneLine().filter(entry)
    assert "redis-host.internal" not in entry.getMessage()
