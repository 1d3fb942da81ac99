"""The Maildir module on a real (temporary) directory: names, scans, tmp/ writes and their
cleanup on error, publishing, and the directory fsync group commit."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onionpost import maildir
from onionpost.ingest.delivery import DirectorySync
from onionpost.maildir import Usage

NAME = re.compile(r"\A(\d+)\.M(\d+)R([0-9A-F]{12})\.onionpost,S=(\d+)\Z")


@pytest.fixture
def box(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    maildir.ensure(path)
    return path


def test_ensure_makes_private_subdirectories(tmp_path: Path) -> None:
    maildir.ensure(tmp_path / "inbox")
    maildir.ensure(tmp_path / "inbox")  # idempotent
    for sub in ("tmp", "new", "cur"):
        assert (tmp_path / "inbox" / sub).stat().st_mode & 0o077 == 0


@given(st.integers(0, 10**12))
def test_file_names_are_ours_only_and_carry_the_size(size: int) -> None:
    queue_id = maildir.new_queue_id()
    name = maildir.file_name(queue_id, size)
    match = NAME.match(name)
    assert match, name
    assert match.group(3) == queue_id
    assert int(match.group(4)) == size
    assert maildir.size_of(Path(name)) == size
    assert "/" not in name and ":" not in name


def test_queue_ids_do_not_repeat() -> None:
    ids = {maildir.new_queue_id() for _ in range(10_000)}
    assert len(ids) == 10_000


def test_size_of_a_foreign_name_falls_back_to_stat(tmp_path: Path) -> None:
    path = tmp_path / "1700000000.12345.otherhost"
    path.write_bytes(b"x" * 123)
    assert maildir.size_of(path) == 123


def test_scan_counts_new_and_cur_not_tmp_dotfiles_or_directories(box: Path) -> None:
    (box / "new" / maildir.file_name("A" * 12, 100)).write_bytes(b"x" * 100)
    (box / "cur" / (maildir.file_name("B" * 12, 50) + ":2,S")).write_bytes(b"x" * 50)
    (box / "cur" / "1700000000.1.foreign:2,").write_bytes(b"x" * 7)  # no ,S=: stat
    (box / "tmp" / maildir.file_name("C" * 12, 999)).write_bytes(b"x")
    (box / "new" / ".hidden").write_bytes(b"x" * 1000)
    (box / "new" / "subdir").mkdir()
    (box / "new" / "link").symlink_to(box / "tmp")
    assert maildir.scan(box) == Usage(3, 157)


def test_scan_trusts_the_size_in_the_name(box: Path) -> None:
    """What ingest writes, it names with the true size; a scan needs no stat per file."""
    (box / "new" / maildir.file_name("D" * 12, 4096)).write_bytes(b"short")
    assert maildir.scan(box) == Usage(1, 4096)


def test_scan_of_a_missing_maildir_is_empty(tmp_path: Path) -> None:
    assert maildir.scan(tmp_path / "nowhere") == Usage(0, 0)


def test_write_tmp_then_publish(box: Path) -> None:
    name = maildir.file_name("E" * 12, 11)
    tmp_path = maildir.write_tmp(box, name, [b"hello ", b"world"])
    assert tmp_path == box / "tmp" / name
    assert tmp_path.read_bytes() == b"hello world"
    assert tmp_path.stat().st_mode & 0o077 == 0
    published = maildir.publish(box, tmp_path)
    assert published == box / "new" / name
    assert published.read_bytes() == b"hello world"
    assert not tmp_path.exists()
    maildir.fsync_dir(box / "new")


def test_write_tmp_removes_its_file_when_writing_fails(box: Path) -> None:
    name = maildir.file_name("F" * 12, 5)
    with pytest.raises(TypeError):
        maildir.write_tmp(box, name, [b"part", "not bytes"])  # type: ignore[list-item]  # on purpose
    assert list((box / "tmp").iterdir()) == []


def test_write_tmp_never_overwrites(box: Path) -> None:
    name = maildir.file_name("G" * 12, 5)
    (box / "tmp" / name).write_bytes(b"first")
    with pytest.raises(FileExistsError):
        maildir.write_tmp(box, name, [b"second"])
    assert (box / "tmp" / name).read_bytes() == b"first"


def test_clean_tmp_removes_leftovers_only_there(box: Path) -> None:
    for index in range(3):
        (box / "tmp" / f"leftover{index}").write_bytes(b"partial")
    (box / "new" / maildir.file_name("I" * 12, 1)).write_bytes(b"x")
    assert maildir.clean_tmp(box) == 3
    assert list((box / "tmp").iterdir()) == []
    assert len(list((box / "new").iterdir())) == 1


# --- DirectorySync: group commit --------------------------------------------------------


def test_concurrent_syncs_share_fsyncs(box: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_fsync_dir = maildir.fsync_dir

    def counting(path: Path) -> None:
        calls.append(path)
        real_fsync_dir(path)

    monkeypatch.setattr(maildir, "fsync_dir", counting)

    async def many() -> None:
        sync = DirectorySync(box / "new")
        await asyncio.gather(*(sync.sync() for _ in range(200)))

    asyncio.run(many())
    assert 1 <= len(calls) <= 2  # one fsync running, at most one more for late comers
    assert set(calls) == {box / "new"}


def test_every_caller_waits_for_an_fsync_that_started_after_it(
        box: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync_dir = maildir.fsync_dir

    def recording(path: Path) -> None:
        events.append("fsync-start")
        real_fsync_dir(path)

    monkeypatch.setattr(maildir, "fsync_dir", recording)

    async def caller(sync: DirectorySync, name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        events.append(f"call-{name}")
        await sync.sync()
        events.append(f"done-{name}")

    async def scenario() -> None:
        sync = DirectorySync(box / "new")
        await asyncio.gather(*(caller(sync, str(n), n * 0.001) for n in range(30)))

    asyncio.run(scenario())
    for n in range(30):
        called, done = events.index(f"call-{n}"), events.index(f"done-{n}")
        assert "fsync-start" in events[called:done], n


def test_a_failed_directory_fsync_reaches_every_waiter(tmp_path: Path) -> None:
    async def scenario() -> list[object]:
        sync = DirectorySync(tmp_path / "gone")
        return await asyncio.gather(*(sync.sync() for _ in range(5)), return_exceptions=True)

    results = asyncio.run(scenario())
    assert all(isinstance(result, FileNotFoundError) for result in results)


def test_sync_recovers_after_a_failure(tmp_path: Path) -> None:
    directory = tmp_path / "later"

    async def scenario() -> None:
        sync = DirectorySync(directory)
        with pytest.raises(FileNotFoundError):
            await sync.sync()
        directory.mkdir()
        await sync.sync()

    asyncio.run(scenario())
