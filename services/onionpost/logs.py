"""Logging: one key=value line per event on stderr, UTC timestamps, no library chatter."""

from __future__ import annotations

import logging
import time


class _UTCFormatter(logging.Formatter):
    converter = staticmethod(time.gmtime)


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_UTCFormatter(
        "ts=%(asctime)sZ level=%(levelname)s logger=%(name)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S"))
    # Our lines carry none of these: skip gathering them for every record (the logging
    # HOWTO's "Optimization" section; the caller's frame lookup is the costly one).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiosmtpd logs peers and envelope addresses at INFO: keep only its errors.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    # ... and warns, not in key=value form, about each malformed PROXY header.
    logging.getLogger("mail.debug").setLevel(logging.ERROR)
