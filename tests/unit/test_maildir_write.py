"""write_tmp_async: the bytes land whole in tmp/, and a failed write leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from onionpost import maildir


@pytest.fixture
def box(tmp_path: Path) -> Path:
    maildir.ensure(tmp_path / "inbox")
    return tmp_path / "inbox"


@pytest.mark.parametrize("size", [0, 10_240, maildir.INLINE_WRITE_LIMIT + 1])
def test_writes_every_part_in_order(box: Path, size: int) -> None:
    parts = [b"Received: x\r\n", bytes(range(256)) * (size // 256) + b"z" * (size % 256)]
    path = asyncio.run(maildir.write_tmp_async(box, "m1,S=1", parts))
    assert path == box / "tmp" / "m1,S=1"
    assert path.read_bytes() == b"".join(parts)
    assert path.stat().st_mode & 0o777 == 0o600


def test_an_existing_name_is_never_overwritten(box: Path) -> None:
    (box / "tmp" / "taken").write_bytes(b"first")
    with pytest.raises(FileExistsError):
        asyncio.run(maildir.write_tmp_async(box, "taken", [b"second"]))
    assert (box / "tmp" / "taken").read_bytes() == b"first"


def test_a_failed_write_removes_the_file(box: Path) -> None:
    with pytest.raises(TypeError):
        asyncio.run(maildir.write_tmp_async(box, "broken", [b"ok", "not bytes"]))  # type: ignore[list-item]
    assert list((box / "tmp").iterdir()) == []


def test_group_syncfs_serves_callers_that_arrive_together_in_one_group(
        tmp_path: Path) -> None:
    groups: list[int] = []
    real = maildir.syncfs_group

    def recording(fds: list[int]) -> list[OSError | None]:
        groups.append(len(fds))
        return real(fds)


    fds = [os.open(tmp_path / f"m{n}", os.O_WRONLY | os.O_CREAT, 0o600) for n in range(5)]

    async def five_at_once() -> list[None]:
        sync = maildir.GroupSync(recording)
        return await asyncio.gather(*(sync.fsync(fd) for fd in fds))

    try:
        assert asyncio.run(five_at_once()) == [None] * 5
    finally:
        for fd in fds:
            os.close(fd)
    assert groups == [5]


def test_group_syncfs_failure_is_told_to_the_failing_caller_only(tmp_path: Path) -> None:
    good = os.open(tmp_path / "good", os.O_WRONLY | os.O_CREAT, 0o600)
    bad = 1 << 30  # no such descriptor: syncfs(2) fails, the group falls back to fsync each

    async def both() -> list[object]:
        sync = maildir.GroupSync(maildir.syncfs_group)
        return await asyncio.gather(sync.fsync(bad), sync.fsync(good), return_exceptions=True)

    try:
        failed, succeeded = asyncio.run(both())
    finally:
        os.close(good)
    assert isinstance(failed, OSError)
    assert succeeded is None
