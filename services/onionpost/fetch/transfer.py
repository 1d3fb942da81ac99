"""One fetch run over an open session: plan from the server's list, then pipelined batches.

Order of events for every message: the server sends it with its sha256; we write it to
tmp/, verify size and hash, fsync, link into new/ (or cur/), fsync the directory, note
it in the fetch record, and only then ask the server to delete it. A name that is taken
here (a case-insensitive disk) is never replaced: that message stays on the server. A run
killed anywhere leaves either a message the server still has (fetched next time) or a
message we have and the server still has (recognised by its unique name: only the delete
is redone).
Nothing is ever fetched twice.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from onionpost.fetch import protocol
from onionpost.fetch.inbox import (
    Delivery,
    FetchRecord,
    Fingerprint,
    LocalMaildir,
    MismatchError,
    sha256_file,
)
from onionpost.fetch.plan import Plan, Request, batches, make_plan, requests
from onionpost.fetch.progress import Outcome, ProgressBar
from onionpost.fetch.protocol import Entry
from onionpost.fetch.session import Session

BATCH_COUNT, BATCH_BYTES = 128, 16_000_000


@dataclass
class Options:
    keep: bool = False
    dry_run: bool = False
    limit: int | None = None


class Fetcher:
    """One run: plan from the server's list, then pipelined batches of requests."""

    def __init__(self, session: Session, inbox: LocalMaildir, options: Options) -> None:
        self.session = session
        self.inbox = inbox
        self.record = FetchRecord(inbox.root)
        self.options = options
        self.outcome = Outcome(kept=options.keep)
        self._known: dict[str, Fingerprint] = {}
        self._present: dict[str, Path] = {}
        self._fetched_now: set[str] = set()

    def run(self) -> Outcome:
        self.session.greet()
        entries, self.outcome.skipped = self.session.listing()
        self._known = self.record.load()  # both empty when --dry-run finds no Maildir yet
        self._present = self.inbox.present()
        plan = make_plan(entries, self._known.keys() | self._present.keys(),
                         keep=self.options.keep, limit=self.options.limit)
        self.outcome.held_back = plan.held_back
        if self.options.dry_run:
            self._dry_outcome(plan)
        else:
            self._transfer(plan)
            still_there = {entry.unique for entry in entries}
            if not self.options.keep:
                still_there -= {entry.unique for entry in plan.confirm + plan.fetch}
            self.record.prune(still_there)
        self.session.quit()
        return self.outcome

    def _dry_outcome(self, plan: Plan) -> None:
        self.outcome.fetched, self.outcome.fetched_bytes = len(plan.fetch), plan.fetch_bytes
        self.outcome.removed = len(plan.confirm)

    def _transfer(self, plan: Plan) -> None:
        """Two batches in flight: while we fsync batch k the server already streams batch
        k+1 and unlinks batch k-1. Requests and replies stay in order on the stream:
        R0 R1 D0 R2 D1 R3 ... (Rk: the GET/SUMs of batch k, Dk: its DELs)."""
        progress = ProgressBar(sys.stdout, len(plan.fetch), plan.fetch_bytes)
        work = batches(requests(plan), BATCH_COUNT, BATCH_BYTES)
        in_flight: list[Entry] = []  # DELs sent, replies not read yet
        try:
            self.session.send(self._asks(work[:2]))
            for index, batch in enumerate(work):
                safe = self._receive(batch, progress)
                self._read_deleted(in_flight)
                in_flight = [] if self.options.keep else safe
                self.session.send(self._deletes(in_flight) + self._asks(work[index + 2:][:1]))
            self._read_deleted(in_flight)
        finally:
            progress.close()

    @staticmethod
    def _asks(some: list[list[Request]]) -> list[bytes]:
        return [protocol.request(verb, entry.name) for batch in some for verb, entry in batch]

    @staticmethod
    def _deletes(entries: list[Entry]) -> list[bytes]:
        return [protocol.request("DEL", entry.name, entry.size) for entry in entries]

    def _read_deleted(self, entries: list[Entry]) -> None:
        for entry in entries:
            if protocol.parse_deleted(self.session.words(), entry.name):
                self.outcome.removed += entry.unique not in self._fetched_now
            else:
                self.outcome.gone += 1

    def _receive(self, batch: list[Request], progress: ProgressBar) -> list[Entry]:
        """Answers to one batch, made durable; returns what the server may now delete."""
        safe: list[Entry] = []
        deliveries: list[Delivery] = []
        fetched: dict[str, Fingerprint] = {}
        try:
            for verb, entry in batch:
                if verb == "GET":
                    delivery = self._fetch_one(entry)
                    if delivery is None:
                        continue
                    deliveries.append(delivery)
                    fetched[entry.unique] = Fingerprint(entry.size, delivery.digest)
                    progress.advance(entry.size)
                elif not self._confirm_one(entry):
                    continue
                safe.append(entry)
        except BaseException:
            for delivery in deliveries:
                delivery.abort()
            raise
        for clash in self.inbox.commit(deliveries):
            deliveries.remove(clash)
            safe.remove(clash.entry)
            del fetched[clash.entry.unique]
            self.outcome.clashes.append(clash.entry.name)
        self.record.append(fetched)
        self._fetched_now.update(fetched)
        self.outcome.fetched += len(deliveries)
        self.outcome.fetched_bytes += sum(d.entry.size for d in deliveries)
        return safe

    def _fetch_one(self, entry: Entry) -> Delivery | None:
        """Receive one message into tmp/ and verify it (not yet durable)."""
        size = protocol.parse_data_header(self.session.words(), entry)
        if size is None:
            self.outcome.gone += 1
            return None
        delivery = self.inbox.start(entry)
        try:
            delivery.verify(self.session.body_into(delivery.write, size))
        except BaseException:
            delivery.abort()
            raise
        return delivery

    def _confirm_one(self, entry: Entry) -> bool:
        """The server still has a message we have: true if its copy is the same as ours."""
        theirs = protocol.parse_sum(self.session.words(), entry)
        if theirs is None:
            self.outcome.gone += 1
            return False
        ours = self._known.get(entry.unique) or sha256_file(self._present[entry.unique])
        if Fingerprint(*theirs) != ours:
            raise MismatchError(f"the server's {entry.name} differs from ours: not deleted")
        return True
