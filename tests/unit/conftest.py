"""Fixtures shared by unit tests: a Maildir's tmp/ and spool threads (the spool tests, plain
and sealed), an environment without ONIONPOST_* variables (the settings readers' tests)."""

from __future__ import annotations

import os
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


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("ONIONPOST_"):
            monkeypatch.delenv(name)
    return monkeypatch
