"""Loss-free: kill -9 either side, or cut the connection, anywhere in a 500-message fetch;
the next normal run leaves every message exactly once here and none on the server."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.fetch_rig import FetchRig
from tests.support.net import wait_for

MESSAGES = 500


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[FetchRig]:
    with FetchRig(tmp_path) as started:
        yield started


def _when_arrived(rig: FetchRig, count: int, process: subprocess.Popen[bytes],
                  already_here: int) -> None:
    """Wait until `count` more messages are here (or the run ended by itself)."""
    while rig.local_count() < already_here + count and process.poll() is None:
        time.sleep(0.001)


def _assert_complete(rig: FetchRig, context: str) -> None:
    assert rig.local_messages() == rig.sent, context
    assert rig.remote_names() == [], context
    assert os.listdir(rig.local / "tmp") == [], context


def _finish(rig: FetchRig, context: str) -> str:
    result = rig.fetch()
    assert result.returncode == 0, f"{context}: {result.stderr}"
    _assert_complete(rig, context)
    return result.stdout


def _kill_after(rig: FetchRig, moment: tuple[str, float]) -> bool:
    """Start a fetch and kill -9 it at the moment; False when it finished first."""
    already_here = rig.local_count()
    process = rig.start_fetch()
    kind, value = moment
    if kind == "after messages":
        _when_arrived(rig, int(value), process, already_here)
    else:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(value)
    finished = process.poll() is not None
    if not finished:
        process.send_signal(signal.SIGKILL)
    process.wait()
    return not finished


def test_client_killed_at_20_moments(rig: FetchRig) -> None:
    """10 moments picked by progress (after k messages arrived: messages land a batch at
    a time, so these hit between our renames and the deletes) and 10 by clock, uniform
    over the length of a whole run (these also hit mid-batch and mid-delete)."""
    rig.deliver(MESSAGES, size=1500, flagged=10)
    started = time.monotonic()
    _finish(rig, "a whole run")
    whole_run = time.monotonic() - started
    chance = random.Random(20)
    moments: list[tuple[str, float]] = [
        ("after messages", k) for k in [0, *chance.sample(range(1, MESSAGES), 9)]]
    moments += [("after seconds", chance.uniform(0, whole_run)) for _ in range(10)]
    killed = both_sides = 0  # both: a message left here *and* there (delete redone)
    for moment in moments:
        rig.deliver(MESSAGES, size=1500, flagged=10)
        killed += _kill_after(rig, moment)
        here = {path.name.partition(":")[0] for path in rig.local_files()}
        both_sides += any(name.partition(":")[0] in here for name in rig.remote_names())
        _finish(rig, f"client killed {moment}")
    assert killed > 0
    assert both_sides > 0


def test_server_side_killed_mid_transfer(rig: FetchRig) -> None:
    interrupted = 0
    for moment in (0, 120, 380):
        rig.deliver(MESSAGES, size=1500)
        already_here = rig.local_count()
        process = rig.start_fetch()
        pids = wait_for(rig.serve_pids, what="fetch-serve to start")
        _when_arrived(rig, moment, process, already_here)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # it finished first: not a hit
                os.kill(pid, signal.SIGKILL)
        _, stderr = process.communicate(timeout=60)
        if process.returncode != 0:
            interrupted += 1
            assert process.returncode == 75, stderr
            assert stderr.decode().count("\n") == 1, stderr
        _finish(rig, f"fetch-serve killed after {moment} messages")
    assert interrupted > 0  # the kills hit a running transfer, not only finished ones


def test_connection_cut_mid_transfer(rig: FetchRig) -> None:
    rig.deliver(MESSAGES, size=1500)
    process = rig.start_fetch()
    _when_arrived(rig, MESSAGES // 2, process, 0)
    cut = rig.sshd.cut_connections()
    _, stderr = process.communicate(timeout=60)

    assert cut > 0
    assert process.returncode == 75, stderr
    assert stderr.decode().startswith("onionpost fetch: connection closed")
    assert stderr.decode().count("\n") == 1
    assert 0 < rig.local_count() < MESSAGES  # a partial fetch, left for the next run
    _finish(rig, "after the cut")
