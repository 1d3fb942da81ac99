"""write_tmp_async: the bytes land whole in tmp/, and a failed write leaves nothing behind."""

from __future__ import annotations

import asyncio
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
