"""`owner add`/`remove` against a real tor (network off): tor re-reads authorized_clients/
on the reload they send, without a restart, and the command returns at once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.net import free_port, port_open, wait_for

from onionpost.owner.registry import OwnerAccess

ONIONPOST = [sys.executable, "-m", "onionpost"]
_LOADED = re.compile(r"Loaded a client authorization key file (\S+)\.auth\.")


@dataclass
class Tor:
    directory: Path
    control_port: int
    process: subprocess.Popen[bytes]

    @property
    def hs_dir(self) -> Path:
        return self.directory / "hs"

    def loads(self) -> list[list[str]]:
        """The auth files tor loaded, one list per (re)load of its configuration."""
        rounds: list[list[str]] = []
        in_round = False
        for line in (self.directory / "info.log").read_text().splitlines():
            loading = "load_client_keys()" in line
            if loading and not in_round:
                rounds.append([])
            if match := _LOADED.search(line):
                rounds[-1].append(match.group(1))
            in_round = loading
        return [sorted(names) for names in rounds]

    def owner(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ONIONPOST_OWNER_ONION_DIR": str(self.hs_dir),
               "ONIONPOST_OWNER_SSH_KEYS": str(self.directory / "authorized_keys"),
               "ONIONPOST_TOR_CONTROL": f"127.0.0.1:{self.control_port}",
               "ONIONPOST_TOR_COOKIE_FILE": str(self.directory / "data" / "control_auth_cookie")}
        return subprocess.run([*ONIONPOST, "owner", *args], capture_output=True, text=True,
                              env=env, timeout=60)


@pytest.fixture
def tor(tmp_path: Path) -> Iterator[Tor]:
    """A tor hosting the owner onion (no network: nothing is published); the HiddenServiceDir
    holds the lock entry before it starts, as the stack's entrypoint makes it."""
    port = free_port()
    (tmp_path / "data").mkdir(mode=0o700)
    (tmp_path / "hs").mkdir(mode=0o700)
    (tmp_path / "empty").write_text("")
    OwnerAccess(tmp_path / "hs", tmp_path / "authorized_keys").ensure_lock()
    (tmp_path / "torrc").write_text("\n".join([
        f"DataDirectory {tmp_path / 'data'}", f"ControlPort 127.0.0.1:{port}",
        "CookieAuthentication 1", "SocksPort 0", "DisableNetwork 1",
        f"HiddenServiceDir {tmp_path / 'hs'}", "HiddenServicePort 22 127.0.0.1:1",
        f"Log info file {tmp_path / 'info.log'}", f"__OwningControllerProcess {os.getpid()}",
        ""]))
    process = subprocess.Popen(
        ["tor", "--defaults-torrc", str(tmp_path / "empty"), "-f", str(tmp_path / "torrc")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: port_open(port) and (tmp_path / "hs" / "hostname").exists(),
                 what="tor's ControlPort")
        yield Tor(tmp_path, port, process)
    finally:
        process.terminate()
        process.wait(10)


def test_add_and_remove_reload_tor_without_a_restart(tor: Tor) -> None:
    pid = tor.process.pid
    assert tor.loads() == [["_lock"]]

    added = tor.owner("add", "laptop")
    assert added.returncode == 0, added.stderr
    assert "tor reloaded" in added.stdout
    removed = tor.owner("remove", "laptop")
    assert removed.returncode == 0, removed.stderr

    assert tor.loads() == [["_lock"], ["_lock", "laptop"], ["_lock"]]
    assert tor.process.poll() is None and tor.process.pid == pid
