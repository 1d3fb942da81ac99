"""Usage kept from inotify (usage.py, ingest/mailbox_usage.py): every change others make to
new/ and cur/ counted without a rescan, ingest's own deliveries counted once, a rescan
when inotify cannot tell, and bounded memory under a flood of changes."""

from __future__ import annotations

import os
import shutil
import time
import tracemalloc
from pathlib import Path

import pytest

from onionpost import maildir
from onionpost.ingest.ledger import Ledger, Limits
from onionpost.ingest.mailbox_usage import UsageKeeper
from onionpost.maildir import Usage
from onionpost.quota import Quota
from onionpost.usage import OWN_RENAMES, MaildirWatch, Tally, census

WINDOW = 60


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def box(tmp_path: Path) -> Path:
    maildir.ensure(tmp_path / "inbox")
    return tmp_path / "inbox"


def put(box: Path, size: int, folder: str = "new", second: int | None = None) -> Path:
    name = maildir.file_name(maildir.new_queue_id(), size)
    if second is not None:
        name = f"{second}{name[name.index('.'):]}"
    path = box / folder / name
    path.write_bytes(b"x" * size)
    return path


def tally_of(box: Path, clock: Clock | None = None) -> Tally:
    tally = Tally(box, WINDOW, reconcile_seconds=600, clock=clock or Clock())
    tally.refresh()
    return tally


def test_the_first_refresh_scans_what_is_there(box: Path) -> None:
    put(box, 100)
    put(box, 50, "cur")
    tally = tally_of(box)
    assert tally.usage == Usage(2, 150) and tally.scans == 1


def test_arrivals_deletions_and_a_reader_moving_mail_are_counted_without_a_rescan(
        box: Path) -> None:
    tally = tally_of(box)
    first, second = put(box, 100), put(box, 20)
    assert tally.refresh() == Usage(2, 120)
    first.rename(box / "cur" / (first.name + ":2,S"))  # the owner's reader marks it seen
    assert tally.refresh() == Usage(2, 120)
    second.unlink()  # fetched away
    assert tally.refresh() == Usage(1, 100)
    (box / "cur" / (first.name + ":2,S")).unlink()  # removed by hand
    assert tally.refresh() == Usage(0, 0)
    assert tally.scans == 1


def test_recent_arrivals_follow_arrivals_and_deletions(box: Path) -> None:
    tally = tally_of(box)
    now = time.time()
    old = put(box, 10, second=int(now) - 3600)
    fresh = [put(box, 10, second=int(now)) for _ in range(3)]
    tally.refresh()
    assert tally.recent(now) == 3
    fresh[0].unlink()
    old.unlink()
    tally.refresh()
    assert tally.recent(now) == 2
    assert tally.recent(now + WINDOW + 1) == 0  # the window moved past them


def test_the_reconciliation_repairs_a_drift(box: Path) -> None:
    clock = Clock()
    tally = tally_of(box, clock)
    put(box, 100)
    tally.refresh()
    tally.usage = Usage(7, 7)  # a drift inotify could not see (a network filesystem...)
    assert tally.refresh() == Usage(7, 7)
    clock.now = 601
    assert tally.refresh() == Usage(1, 100)
    assert tally.scans == 2


def test_a_name_without_size_is_rescanned_rather_than_guessed(box: Path) -> None:
    tally = tally_of(box)
    (box / "new" / "foreign-name").write_bytes(b"x" * 33)
    assert tally.refresh() == Usage(1, 33)
    (box / "new" / "foreign-name").unlink()
    assert tally.refresh() == Usage(0, 0)
    assert tally.scans == 3


def test_the_watch_survives_its_folder_being_recreated(box: Path) -> None:
    tally = tally_of(box)
    put(box, 10, "cur")
    assert tally.refresh() == Usage(1, 10)
    shutil.rmtree(box / "cur")
    assert tally.refresh() == Usage(0, 0)
    (box / "cur").mkdir()
    put(box, 5, "cur")
    assert tally.refresh() == Usage(1, 5)
    put(box, 7, "cur")  # and the new folder is watched
    assert tally.refresh() == Usage(2, 12)


def test_the_watch_survives_its_folder_being_moved_away(box: Path) -> None:
    tally = tally_of(box)
    put(box, 10, "new")
    (box / "new").rename(box / "old")
    (box / "new").mkdir()
    assert tally.refresh() == Usage(0, 0)
    put(box, 3, "old")  # no longer the mailbox
    put(box, 4, "new")
    assert tally.refresh() == Usage(1, 4)


def test_an_overflowed_event_queue_means_a_rescan(box: Path) -> None:
    tally = tally_of(box)
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    for number in range(limit + 10):
        (box / "new" / f"{number}.M1R1.onionpost,S=1").write_bytes(b"x")
    assert tally.refresh() == Usage(limit + 10, limit + 10)
    assert tally.scans == 2


def test_changes_during_a_scan_are_settled_against_the_names_it_counted(box: Path) -> None:
    kept, fetched = put(box, 10), put(box, 20)
    watch = MaildirWatch(box)
    found = census(box, 0)
    fetched.unlink()  # as if during the scan: counted, then gone
    late = put(box, 5)  # not counted by the scan
    kept.rename(box / "cur" / (kept.name + ":2,S"))
    changes = watch.read(counted=found.names)
    assert found.usage == Usage(2, 30)
    assert (found.usage.messages + changes.messages, found.usage.bytes + changes.bytes) == (2, 15)
    late.unlink()
    put(box, 1).unlink()  # came and went: never counted, never subtracted
    again = watch.read(counted=found.names)
    assert (again.messages, again.bytes) == (-1, -5)


# --- ingest: its own deliveries are counted by the ledger, not twice ------------------------

def ledger() -> Ledger:
    return Ledger.local(Limits(10, 10, 10, Quota(1000, 10**9)))


def deliver(box: Path, book: Ledger, size: int) -> None:
    """What ingest does: reserve, write in tmp/, rename into new/ under the commit."""
    assert book.reserve(size) is None
    name = maildir.file_name(maildir.new_queue_id(), size)
    tmp = maildir.write_tmp(box, name, [b"x" * size])
    book.commit(size, lambda: maildir.publish(box, tmp))


def settle(keeper: UsageKeeper, book: Ledger) -> None:
    """One turn of the keeper's thread."""
    changes = keeper.watch.read()
    assert not changes.rescan
    book.adjust(changes.messages, changes.bytes)


def test_ingest_counts_its_own_deliveries_once_and_others_changes_from_inotify(
        box: Path) -> None:
    book = ledger()
    put(box, 100)
    keeper = UsageKeeper(box, book, 600)
    assert keeper.reconcile() == Usage(1, 100)
    deliver(box, book, 10)
    deliver(box, book, 20)
    settle(keeper, book)
    assert book.usage() == Usage(3, 130)
    for path in (box / "new").iterdir():
        if path.name.endswith(",S=10"):
            path.unlink()  # fetched
    put(box, 1, "cur")  # copied in by hand
    settle(keeper, book)
    assert book.usage() == Usage(3, 121) == maildir.scan(box)


def test_ingest_reconciliation_repairs_a_drift(box: Path) -> None:
    book = ledger()
    keeper = UsageKeeper(box, book, 600)
    keeper.reconcile()
    put(box, 40)
    book.adjust(5, 5000)  # drifted
    assert keeper.reconcile() == Usage(1, 40) == book.usage()


# --- hostile: floods of changes ---------------------------------------------------------

def test_renames_out_of_tmp_that_never_arrive_are_remembered_within_a_bound(
        box: Path) -> None:
    watch = MaildirWatch(box, own_deliveries=True)
    (box / "elsewhere").mkdir()
    for number in range(OWN_RENAMES + 500):
        (box / "tmp" / str(number)).write_bytes(b"")
        os.rename(box / "tmp" / str(number), box / "elsewhere" / str(number))
        if number % 1000 == 0:
            watch.read()
    watch.read()
    assert len(watch._own) <= OWN_RENAMES


def test_a_flood_of_creations_and_deletions_keeps_memory_flat(box: Path) -> None:
    tally = tally_of(box)
    now = int(time.time())
    new = f"{box}/new/"  # plain strings: pathlib interns every name it parses

    def flood() -> None:
        for round_ in range(20):
            names = [f"{now - 7200 + round_ * 300 + n % 300 if n % 2 else now - n % 30}"
                     f".M{n}R{round_}.onionpost,S=1" for n in range(500)]
            for name in names:
                os.close(os.open(new + name, os.O_WRONLY | os.O_CREAT, 0o600))
            tally.refresh()
            for name in names:
                os.unlink(new + name)
            tally.refresh()
            tally.recent(time.time())

    flood()  # warm up (caches, the event buffer)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    flood()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert tally.usage == Usage(0, 0)
    assert len(tally._arrivals) == 0
    assert grown < 64 * 1024, grown
