"""Spool: a small message stays in memory, a big one grows in a tmp/ file (trace headers
first, exact size), and a discarded one leaves no file, even behind a write still running."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from onionpost.ingest import delivery
from onionpost.ingest.spool import Spool

HEADER = b"Return-Path: <a@b>\r\n"


def files(tmp_dir: str) -> list[str]:
    return sorted(os.listdir(tmp_dir))


def test_a_small_message_never_touches_the_disk(tmp_dir: str,
                                                threads: ThreadPoolExecutor) -> None:
    spool = Spool(tmp_dir, "ID1", HEADER, threads)
    spool.add([b"Subject: x\r\n", b"\r\nbody\r\n"])
    spool.hand_over()
    assert asyncio.run(spool.finish()) == [HEADER, b"Subject: x\r\n", b"\r\nbody\r\n"]
    assert spool.size == len(HEADER) + 20
    assert files(tmp_dir) == []


def test_a_spilled_message_is_written_whole_header_first_0600(
        tmp_dir: str, threads: ThreadPoolExecutor) -> None:
    blocks = [bytes([n]) * 70_000 for n in range(5)]

    async def receive() -> delivery.Content:
        spool = Spool(tmp_dir, "ID2", HEADER, threads)
        for block in blocks[:4]:
            await spool.spill([block])
        spool.add([blocks[4]])
        spool.hand_over()
        content = await spool.finish()
        assert spool.size == len(HEADER) + 5 * 70_000
        return content

    content = asyncio.run(receive())
    assert isinstance(content, delivery.Written)
    assert files(tmp_dir) == [content.tmp_name]
    path = Path(tmp_dir, content.tmp_name)
    assert path.read_bytes() == HEADER + b"".join(blocks)
    assert path.stat().st_mode & 0o777 == 0o600
    assert "," not in content.tmp_name and "ID2" in content.tmp_name


def test_discard_removes_the_file_even_behind_a_running_write(
        tmp_dir: str, threads: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real_write = os.write

    def slow_write(fd: int, data: memoryview) -> int:
        release.wait(10)
        return real_write(fd, data)

    async def hang_up() -> None:
        spool = Spool(tmp_dir, "ID3", HEADER, threads)
        monkeypatch.setattr(os, "write", slow_write)
        writing = asyncio.ensure_future(spool.spill([b"x" * 70_000]))
        await asyncio.sleep(0.05)
        writing.cancel()  # the session is gone; the thread still writes
        spool.discard()
        release.set()
        spool.discard()  # idempotent

    asyncio.run(hang_up())
    threads.shutdown(wait=True)
    assert files(tmp_dir) == []


def test_a_failed_write_is_kept_as_the_error_and_the_file_removed(
        tmp_dir: str, threads: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: memoryview) -> int:
        raise OSError(28, "No space left on device")

    async def fill() -> Spool:
        spool = Spool(tmp_dir, "ID4", HEADER, threads)
        monkeypatch.setattr(os, "write", full)
        await spool.spill([b"x" * 70_000])
        await spool.spill([b"y" * 10])  # counted, dropped
        return spool

    spool = asyncio.run(fill())
    threads.shutdown(wait=True)
    assert spool.error is not None and spool.error.errno == 28
    assert spool.size == len(HEADER) + 70_010
    assert files(tmp_dir) == []


def test_a_handed_over_spool_is_left_to_the_delivery(
        tmp_dir: str, threads: ThreadPoolExecutor) -> None:
    async def deliver() -> delivery.Content:
        spool = Spool(tmp_dir, "ID5", HEADER, threads)
        await spool.spill([b"z" * 70_000])
        spool.hand_over()
        content = await spool.finish()
        spool.discard()  # the session ends after its 250: the file is the delivery's
        return content

    content = asyncio.run(deliver())
    threads.shutdown(wait=True)
    assert isinstance(content, delivery.Written)
    assert files(tmp_dir) == [content.tmp_name]
