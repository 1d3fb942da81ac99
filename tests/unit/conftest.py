"""Fixtures shared by the spool tests (plain and sealed): a Maildir's tmp/ and spool threads."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from onionpost import maildir


@pytest.fixture
def tmp_dir(tmp_path: Path) -> str:
    maildir.ensure(tmp_path)
    return f"{tmp_path}/tmp/"


@pytest.fixture
def threads() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(2)
    yield executor
    executor.shutdown(wait=True)
