"""A server that lies (garbage, names with "..", a wrong size or hash): fetch stops with a
clear error, writes nothing outside the local Maildir and asks for no delete."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import hostile_serve
from tests.support.fetch_rig import FetchRig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[FetchRig]:
    with FetchRig(tmp_path) as started:
        started.mode_file = tmp_path / "mode"
        started.request_log = tmp_path / "requests.log"
        started.request_log.touch()
        public = started.key.with_suffix(".pub").read_text().strip()
        command = (f"{sys.executable} {hostile_serve.__file__} {started.mode_file} "
                   f"{started.remote} {started.request_log}")
        started.sshd.authorized_keys.write_text(f'command="{command}",restrict {public}\n')
        yield started


def _all_files(root: Path) -> set[Path]:
    return {Path(folder) / name for folder, _, names in os.walk(root) for name in names}


@pytest.mark.parametrize(("mode", "says"), [
    ("garbage", "garbage from the other side"),
    ("dotdot-list", "unsafe message name 'new/../../escaped'"),
    ("dotdot-data", "asked for new/"),
    ("other-name", "asked for new/"),
    ("size", "bytes, sent as"),
    ("hash", "the server announced"),
])
def test_a_lying_server_gets_nothing_deleted(rig: FetchRig, mode: str, says: str) -> None:
    rig.mode_file.write_text(mode)
    rig.deliver(5)
    server_before = rig.remote_names()
    elsewhere = _all_files(rig.directory) - _all_files(rig.local)

    result = rig.fetch()

    assert result.returncode == 76, result.stderr
    assert result.stderr.startswith("onionpost fetch: protocol error, stopped: ")
    assert says in result.stderr
    assert result.stderr.count("\n") == 1
    assert rig.remote_names() == server_before
    assert b"DEL" not in rig.request_log.read_bytes()
    changed = (_all_files(rig.directory) - _all_files(rig.local)) - elsewhere
    assert {path.name for path in changed} <= {"sshd.log"}, changed
    assert not (rig.directory / "escaped").exists()
    assert rig.local_files() == []
    assert os.listdir(rig.local / "tmp") == []


def test_a_short_message_is_a_lost_connection(rig: FetchRig) -> None:
    rig.mode_file.write_text("short")
    rig.deliver(2)

    result = rig.fetch()

    assert result.returncode in (75, 76), result.stderr
    assert result.stderr.count("\n") == 1
    assert len(rig.remote_names()) == 2
    assert b"DEL" not in rig.request_log.read_bytes()
    assert rig.local_files() == []


def test_a_stalled_server_is_given_up_on(rig: FetchRig) -> None:
    rig.mode_file.write_text("stall")
    rig.deliver(2)

    result = rig.fetch("--timeout", "2")

    assert result.returncode == 75, result.stderr
    assert result.stderr == ("onionpost fetch: no answer from the server for 2 s, gave up "
                             "after 0 messages\n")
    assert len(rig.remote_names()) == 2
    assert os.listdir(rig.local / "tmp") == []


@pytest.mark.parametrize(("mode", "says"), [
    ("escapes", "the server side did not start (exit 3): "),
    ("escapes-late", "connection closed by the server after 0 messages (run again to finish) "),
])
def test_what_the_server_writes_to_stderr_cannot_steer_the_terminal(
        rig: FetchRig, mode: str, says: str) -> None:
    rig.mode_file.write_text(mode)
    rig.deliver(2)

    result = rig.fetch()

    assert result.returncode in (69, 75), result.stderr
    shown = "all good \ufffd[2J\ufffd31m\ufffdgnp.exe\ufffdx\ufffd end\ufffd"
    assert result.stderr == f"onionpost fetch: {says}{shown}\n", ascii(result.stderr)
    assert len(rig.remote_names()) == 2


def test_a_name_taken_here_is_never_replaced(rig: FetchRig) -> None:
    """A server message whose name a local file has (case-insensitive disks): the owner's
    file stays as it is, that message stays on the server, everything else is fetched, and
    the run says so and exits 73 (EX_CANTCREAT); once the owner renames the file, it comes."""
    taken, *others = rig.deliver(3)
    rig.mode_file.write_text(f"clash {rig.local}")
    owners = rig.local / taken

    result = rig.fetch()

    assert owners.read_bytes() == hostile_serve.OWNERS_MESSAGE
    assert result.returncode == 73, result.stderr
    assert rig.remote_names() == [taken.partition("/")[2]]
    assert f"DEL {taken}".encode() not in rig.request_log.read_bytes()
    assert result.stdout == ("fetched 2 messages, 0.0 MB; "
                             "1 left on the server: a local file has the name\n")
    assert result.stderr == (
        f"onionpost fetch: kept the local files named {taken}; the server's messages of "
        "the same names stay there: give the local files other names (e.g. add .1), "
        "then run again\n")
    assert {path.name for path in rig.local_files()} == {
        owners.name, *(name.partition("/")[2] for name in others)}
    assert os.listdir(rig.local / "tmp") == []

    owners.rename(owners.with_name(owners.name + ".1"))
    rig.mode_file.write_text("honest")
    assert rig.fetch().returncode == 0
    assert (rig.local / taken).read_bytes() == rig.sent[owners.name]
    assert rig.remote_names() == []
