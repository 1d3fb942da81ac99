"""write_tmp_async and the two deliveries (group, file): whole messages in new/, and every
failure told to the right caller with nothing half-done left behind."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from onionpost import maildir
from onionpost.ingest import delivery as deliveries


@pytest.fixture
def box(tmp_path: Path) -> Path:
    maildir.ensure(tmp_path / "inbox")
    return tmp_path / "inbox"


@pytest.mark.parametrize("size", [0, 10_240, deliveries.INLINE_WRITE_LIMIT + 1])
def test_writes_every_part_in_order(box: Path, size: int) -> None:
    parts = [b"Received: x\r\n", bytes(range(256)) * (size // 256) + b"z" * (size % 256)]
    path = asyncio.run(deliveries.write_tmp_async(box, "m1,S=1", parts))
    assert path == box / "tmp" / "m1,S=1"
    assert path.read_bytes() == b"".join(parts)
    assert path.stat().st_mode & 0o777 == 0o600


def test_an_existing_name_is_never_overwritten(box: Path) -> None:
    (box / "tmp" / "taken").write_bytes(b"first")
    with pytest.raises(FileExistsError):
        asyncio.run(deliveries.write_tmp_async(box, "taken", [b"second"]))
    assert (box / "tmp" / "taken").read_bytes() == b"first"


def test_a_failed_write_removes_the_file(box: Path) -> None:
    with pytest.raises(TypeError):
        asyncio.run(deliveries.write_tmp_async(box, "broken", [b"ok", "not bytes"]))  # type: ignore[list-item]  # on purpose
    assert list((box / "tmp").iterdir()) == []


# --- delivery: tmp/, sync, rename into new/, fsync of new/ ---------------------------------

def run_move(move: Callable[[], object]) -> None:
    move()


def deliver_together(delivery: deliveries.Delivery, count: int) -> list[object]:
    async def together() -> list[object]:
        return await asyncio.gather(*(
            delivery.deliver(f"m{n}", [b"Subject: %d\r\n" % n], run_move)
            for n in range(count)), return_exceptions=True)
    return asyncio.run(together())


def names_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


@pytest.mark.parametrize("mode", ["group", "file"])
def test_delivered_messages_are_whole_in_new_and_nothing_stays_in_tmp(
        box: Path, mode: str) -> None:
    assert deliver_together(deliveries.delivery(mode, box), 5) == [None] * 5
    assert names_in(box / "new") == [f"m{n}" for n in range(5)]
    assert (box / "new" / "m3").read_bytes() == b"Subject: 3\r\n"
    assert names_in(box / "tmp") == []


def test_callers_that_arrive_together_share_one_syncfs_and_one_directory_fsync(
        box: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_syncfs, real_fsync_dir = deliveries.syncfs, maildir.fsync_dir
    monkeypatch.setattr(deliveries, "syncfs", lambda fd: (calls.append("syncfs"), real_syncfs(fd)))  # type: ignore[func-returns-value]  # record, then call
    def fsync_dir(path: Path | str) -> None:
        calls.append(f"fsync {Path(path).name}/")
        real_fsync_dir(path)
    monkeypatch.setattr(maildir, "fsync_dir", fsync_dir)
    assert deliver_together(deliveries.delivery("group", box), 5) == [None] * 5
    assert calls == ["syncfs", "fsync new/"]


def test_a_failed_syncfs_fails_the_whole_group_and_renames_nothing(
        box: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(deliveries, "syncfs", broken)
    outcomes = deliver_together(deliveries.delivery("group", box), 3)
    assert [(type(o), o.stage, o.error.errno) for o in outcomes] == [  # type: ignore[attr-defined]  # all NotStoredError
        (deliveries.NotStoredError, "write", 5)] * 3
    assert names_in(box / "new") == names_in(box / "tmp") == []


@pytest.mark.parametrize("mode", ["group", "file"])
def test_a_failed_rename_fails_that_message_only(box: Path, mode: str) -> None:
    (box / "new" / "m1" / "in-the-way").mkdir(parents=True)  # rename(2) onto it fails
    first, refused, third = deliver_together(deliveries.delivery(mode, box), 3)
    assert first is None and third is None
    assert isinstance(refused, deliveries.NotStoredError) and refused.stage == "publish"
    assert names_in(box / "new") == ["m0", "m1", "m2"]
    assert (box / "new" / "m1").is_dir()
    assert names_in(box / "tmp") == []


@pytest.mark.parametrize("mode", ["group", "file"])
def test_a_failed_directory_fsync_says_the_name_may_not_be_durable(
        box: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: Path) -> None:
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(maildir, "fsync_dir", broken)
    outcomes = deliver_together(deliveries.delivery(mode, box), 2)
    assert [type(outcome) for outcome in outcomes] == [deliveries.NameNotDurableError] * 2
    assert names_in(box / "new") == ["m0", "m1"]  # there, but not known to be durable


def test_a_group_that_fails_unexpectedly_answers_every_caller(
        box: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(self: deliveries.GroupDelivery, group: list[object]) -> list[object]:
        raise RuntimeError("bug")
    monkeypatch.setattr(deliveries.GroupDelivery, "_commit", bug)
    outcomes = deliver_together(deliveries.delivery("group", box), 2)
    assert [type(outcome) for outcome in outcomes] == [RuntimeError] * 2


@pytest.mark.parametrize("mode", ["group", "file"])
def test_a_message_already_in_tmp_is_renamed_under_its_final_name(box: Path, mode: str) -> None:
    (box / "tmp" / "spilled").write_bytes(b"big message")

    async def together() -> list[object]:
        delivery = deliveries.delivery(mode, box)
        return list(await asyncio.gather(
            delivery.deliver("m0,S=11", deliveries.Written("spilled"), run_move),
            delivery.deliver("m1", [b"small"], run_move), return_exceptions=True))

    assert asyncio.run(together()) == [None, None]
    assert names_in(box / "new") == ["m0,S=11", "m1"]
    assert (box / "new" / "m0,S=11").read_bytes() == b"big message"
    assert names_in(box / "tmp") == []


def test_a_failed_syncfs_removes_messages_already_in_tmp_too(
        box: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (box / "tmp" / "spilled").write_bytes(b"big message")
    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(deliveries, "syncfs", broken)
    with pytest.raises(deliveries.NotStoredError):
        asyncio.run(deliveries.delivery("group", box).deliver(
            "m0", deliveries.Written("spilled"), run_move))
    assert names_in(box / "new") == names_in(box / "tmp") == []


def test_tmp_names_carry_no_size_and_differ_from_delivered_names() -> None:
    name = maildir.tmp_name("ABC123")
    assert "ABC123" in name and "," not in name and name.endswith(maildir.HOST_LABEL)
