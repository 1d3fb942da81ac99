"""`onionpost fetch` against a real sshd with the documented forced-command key."""

from __future__ import annotations

import os
import pty
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.fetch_rig import FetchRig
from tests.support.net import free_port
from tests.support.sshd import ALIAS


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[FetchRig]:
    with FetchRig(tmp_path) as started:
        yield started


def test_fetches_500_messages_once_byte_identical_and_empties_the_server(
        rig: FetchRig) -> None:
    rig.deliver(500, size=3000, flagged=20)

    result = rig.fetch()

    assert result.returncode == 0, result.stderr
    assert result.stdout == "fetched 500 messages, 1.5 MB\n"
    assert result.stderr == ""
    assert rig.local_messages() == rig.sent
    assert rig.remote_names() == []
    seen = [path.name for path in rig.local_files() if path.parent.name == "cur"]
    assert len(seen) == 20 and all(name.endswith(":2,S") for name in seen)
    assert os.listdir(rig.local / "tmp") == []


def test_creates_the_local_maildir(rig: FetchRig) -> None:
    rig.deliver(1)
    assert not rig.local.exists()
    assert rig.fetch().returncode == 0
    assert {"cur", "new", "tmp"} <= set(os.listdir(rig.local))
    assert rig.local_messages() == rig.sent


def test_keep_leaves_mail_and_never_fetches_twice(rig: FetchRig) -> None:
    first = rig.deliver(30)

    assert rig.fetch("--keep").stdout.startswith("fetched 30 messages")
    assert rig.remote_names() == sorted(name.partition("/")[2] for name in first)
    assert rig.fetch("--keep").stdout.startswith("fetched 0 messages")

    rig.deliver(5)
    again = rig.fetch("--keep")
    assert again.stdout.startswith("fetched 5 messages"), again.stdout
    assert rig.local_messages() == rig.sent
    assert len(rig.remote_names()) == 35

    # The owner deletes one locally; a normal run then removes the server copies without
    # fetching any of them again.
    rig.local_files()[0].unlink()
    final = rig.fetch()
    assert final.stdout == ("fetched 0 messages, 0.0 MB; removed 35 already fetched from "
                            "the server\n"), final.stdout
    assert rig.remote_names() == []
    assert rig.local_count() == 34


def test_dry_run_changes_nothing(rig: FetchRig) -> None:
    rig.deliver(12, size=1000)
    before = rig.remote_names()

    result = rig.fetch("--dry-run")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "would fetch 12 messages, 0.0 MB\n"
    assert rig.remote_names() == before
    assert not rig.local.exists()


def test_limit_fetches_the_oldest_n(rig: FetchRig) -> None:
    names = rig.deliver(10)

    result = rig.fetch("--limit", "4")

    assert result.stdout.startswith("fetched 4 messages"), result.stdout
    assert "6 more waiting on the server (--limit)" in result.stdout
    assert sorted(rig.local_messages()) == sorted(n.partition("/")[2] for n in names[:4])
    assert len(rig.remote_names()) == 6


def test_server_unreachable_is_75_with_one_line(rig: FetchRig) -> None:
    rig.deliver(1)
    result = rig.fetch("-o", f"Port={free_port()}")

    assert result.returncode == 75
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"onionpost fetch: cannot reach {ALIAS}: ")
    assert "Connection refused" in result.stderr


def test_unknown_key_is_refused(rig: FetchRig) -> None:
    rig.sshd.authorized_keys.write_text("")  # the server no longer knows the owner's key
    result = rig.fetch()

    assert result.returncode == 77, result.stderr
    assert "Permission denied" in result.stderr
    assert result.stderr.count("\n") == 1


def test_missing_server_maildir_is_a_server_error(rig: FetchRig) -> None:
    with rig.sshd.authorized_keys.open("w") as handle:
        handle.write(rig.authorized_line("--remote-maildir", str(rig.directory / "nowhere"))
                     + "\n")
    result = rig.fetch()

    assert result.returncode == 69
    assert result.stderr == ("onionpost fetch: the server says: no Maildir at the "
                             "configured path\n")


def test_a_second_fetch_into_the_same_maildir_waits_its_turn(rig: FetchRig) -> None:
    import fcntl

    rig.deliver(3)
    rig.local.mkdir(parents=True)
    with (rig.local / ".onionpost-fetch.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = rig.fetch()
    assert result.returncode == 75
    assert "another fetch" in result.stderr
    assert len(rig.remote_names()) == 3


def _ssh(rig: FetchRig, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["ssh", "-F", str(rig.sshd.client_config), *args], input=stdin,
                          capture_output=True, timeout=30)


def test_the_fetch_key_cannot_run_another_command(rig: FetchRig) -> None:
    marker = rig.directory / "pwned"

    result = _ssh(rig, ALIAS, f"touch {marker}; id")

    assert not marker.exists()
    assert b"uid=" not in result.stdout
    assert result.stdout.startswith(b"ONIONPOST-FETCH 1\n")


def test_the_fetch_key_gets_no_shell(rig: FetchRig) -> None:
    with_tty = _ssh(rig, "-tt", ALIAS, stdin=b"id\nexit\n")
    plain = _ssh(rig, ALIAS, stdin=b"id\n")

    assert b"uid=" not in with_tty.stdout + plain.stdout
    assert b"PTY allocation request failed" in with_tty.stderr
    assert plain.stdout == b"ONIONPOST-FETCH 1\nERR unknown request 'id'\n"


def test_the_fetch_key_forwards_no_ports(rig: FetchRig) -> None:
    result = _ssh(rig, "-W", f"127.0.0.1:{rig.sshd.port}", ALIAS)

    assert b"SSH-2.0" not in result.stdout
    assert b"stdio forwarding failed" in result.stderr
    assert "refused local port forward" in rig.sshd.log.read_text()


def test_a_terminal_gets_a_progress_bar(rig: FetchRig) -> None:
    rig.deliver(50)
    terminal, its_end = pty.openpty()
    process = subprocess.Popen(rig.command(), stdout=its_end, stderr=subprocess.PIPE)
    os.close(its_end)
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(terminal)
    assert process.wait(60) == 0

    assert b"\r[" in shown
    assert b"50/50 messages, 0.1 MB of 0.1 MB" in shown
    assert shown.endswith(b"\r\nfetched 50 messages, 0.1 MB\r\n")


def test_the_default_destination_is_home_mail_inbox(rig: FetchRig, tmp_path: Path) -> None:
    rig.deliver(2)
    home = tmp_path / "home"
    command = rig.command()
    assert command[-2] == "--to"

    result = subprocess.run(command[:-2], capture_output=True, text=True,
                            env={**os.environ, "HOME": str(home)}, timeout=60)

    assert result.returncode == 0, result.stderr
    rig.local = home / "mail" / "inbox"
    assert rig.local_messages() == rig.sent
