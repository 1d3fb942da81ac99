"""`onionpost guardian` and `onionpost notifier` as container commands: they stop cleanly on
SIGTERM, and their helper processes (rq's scheduler, the sweep cron) never outlive them."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.support.guardian_rig import ServiceProcess
from tests.support.net import wait_for


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # exited, waiting for its (dead) parent's reaper


@pytest.mark.parametrize(("command", "helpers"), [("guardian", 2), ("notifier", 1)])
def test_sigterm_stops_the_worker_and_its_helpers(
        start_service: Callable[..., ServiceProcess], command: str, helpers: int) -> None:
    service = start_service(command)
    assert service.process is not None
    pid = service.process.pid
    wait_for(lambda: len(children(pid)) == helpers, what=f"{helpers} helper processes")
    helper_pids = children(pid)
    assert service.stop() == 0
    wait_for(lambda: all(gone(child) for child in helper_pids), what="the helpers to exit")


def test_helpers_die_with_a_killed_guardian(
        start_service: Callable[..., ServiceProcess]) -> None:
    service = start_service("guardian")
    assert service.process is not None
    pid = service.process.pid
    wait_for(lambda: len(children(pid)) == 2, what="2 helper processes")
    helper_pids = children(pid)
    os.kill(pid, signal.SIGKILL)
    service.process.wait(10)
    wait_for(lambda: all(gone(child) for child in helper_pids), what="the helpers to exit")
