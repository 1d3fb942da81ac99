"""Fixtures for the ingest integration tests: one running ingest, and reading what it stored."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import TEST_DOMAIN
from tests.support.privacy import names_of_this_machine
from tests.support.servers import IngestProcess

RCPT = f"owner@{TEST_DOMAIN}"
# Return-Path, then Received on two lines (folded before the date).
TRACE = re.compile(rb"\AReturn-Path: [^\r\n]*\r\nReceived: [^\r\n]*\r\n\t[^\r\n]*\r\n")
UNHANDLED = re.compile(r"Traceback|never retrieved|Exception in|Unhandled|Error: \(")
IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


def reveals_machine(text: str) -> list[str]:
    """Whatever in text names an IP, the machine, or an envelope address."""
    found = IPV4.findall(text)
    found += [marker for marker in ("::1", "fc00:", "@", "localhost") if marker in text]
    found += names_of_this_machine(text)
    return found


@pytest.fixture(autouse=True)
def ingest_logs_stay_private(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """After every ingest test: its logs hold no IP, address, hostname or traceback."""
    yield
    if not request.module.__name__.rpartition(".")[2].startswith("test_ingest_"):
        return
    for log in tmp_path.rglob("ingest-*.log"):
        text = log.read_text(errors="replace")
        assert not reveals_machine(text), f"{log.name} reveals {reveals_machine(text)}"
        assert not UNHANDLED.search(text), text[-3000:]


@pytest.fixture
def ingest(start_ingest: Callable[..., IngestProcess]) -> IngestProcess:
    """An ingest with default settings (STARTTLS on, no PROXY protocol)."""
    return start_ingest()


def split_trace(stored: bytes) -> tuple[bytes, bytes]:
    """(our trace headers, the message exactly as the client sent it)."""
    match = TRACE.match(stored)
    assert match, f"no trace headers at the top of {stored[:200]!r}"
    return stored[:match.end()], stored[match.end():]


def stored_bodies(ingest: IngestProcess) -> list[bytes]:
    return [split_trace(path.read_bytes())[1] for path in ingest.messages()]


def files_in(directory: Path) -> list[Path]:
    return sorted(directory.iterdir()) if directory.exists() else []
