"""Ingest's stored-mail counters (the ledger's) kept true without rescanning the mailbox:
ingest counts its own deliveries as it makes them (Ledger.commit); fetch, a mail reader or
the owner by hand change the Maildir too, and those changes come from inotify (usage.py),
read by one thread in the process that holds the ledger, before any worker forks."""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path

from onionpost.ingest.ledger import Ledger
from onionpost.maildir import Usage
from onionpost.usage import MaildirWatch, census

log = logging.getLogger("onionpost.ingest")


class UsageKeeper:
    def __init__(self, box: Path, ledger: Ledger, reconcile_seconds: float) -> None:
        self.box = box
        self.ledger = ledger
        self.reconcile_seconds = reconcile_seconds
        self.watch = MaildirWatch(box, own_deliveries=True)
        self.stale = False  # inotify lost track during the last scan: scan again soon

    def reconcile(self) -> Usage:
        """A full scan into the ledger, under its lock: no delivery of ours runs meanwhile,
        and the watch settles what fetch or the owner changed during the scan."""
        return self.ledger.rescan(self._census)

    def start(self) -> None:
        threading.Thread(target=self._run, name="usage", daemon=True).start()

    def _census(self) -> Usage:
        self.watch.read()  # what happened before the scan is in the scan
        found = census(self.box, math.inf)
        changes = self.watch.read(counted=found.names)
        self.stale = changes.rescan
        return Usage(max(0, found.usage.messages + changes.messages),
                     max(0, found.usage.bytes + changes.bytes))

    def _run(self) -> None:
        due = time.monotonic() + self.reconcile_seconds
        while True:
            try:
                changes = self.watch.read(timeout=max(0.0, due - time.monotonic()))
                if changes.rescan or time.monotonic() >= due:
                    usage = self.reconcile()
                    due = time.monotonic() + (1.0 if self.stale else self.reconcile_seconds)
                    log.debug("event=usage_rescan messages=%d", usage.messages)
                elif changes.messages or changes.bytes:
                    self.ledger.adjust(changes.messages, changes.bytes)
            except Exception as error:  # a bug must not leave the counters stale for good
                log.error("event=usage_watch_failed error=%s", type(error).__name__)
                time.sleep(1)
                due = 0.0
