"""`owner add`/`remove`/`join` against a real tor (network off): tor re-reads
authorized_clients/ (server) and ClientOnionAuthDir (laptop) on the reload they send,
without a restart, and the command returns at once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from stem.control import Controller
from tests.support.net import free_port, port_open, wait_for

from onionpost.owner.registry import OwnerAccess

ONIONPOST = [sys.executable, "-m", "onionpost"]
_LOADED = re.compile(r"Loaded a client authorization key file (\S+)\.auth\.")


@dataclass
class Tor:
    directory: Path
    control_port: int
    process: subprocess.Popen[bytes]
    # This process's one connection: stem makes it the owning one (TAKEOWNERSHIP) and tor
    # re-reads __OwningControllerProcess on each reload, so any later connection from here
    # would become the owner and stop tor when it closes.
    controller: Controller

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

    def owner(self, *args: str, stdin: str = "", **extra_env: str
              ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ONIONPOST_OWNER_ONION_DIR": str(self.hs_dir),
               "ONIONPOST_OWNER_SSH_KEYS": str(self.directory / "authorized_keys"),
               "ONIONPOST_TOR_CONTROL": f"127.0.0.1:{self.control_port}",
               "ONIONPOST_TOR_COOKIE_FILE": str(self.directory / "data" / "control_auth_cookie")}
        return subprocess.run([*ONIONPOST, "owner", *args], capture_output=True, text=True,
                              env={**env, **extra_env}, timeout=60, input=stdin)

    def client_keys(self, address: str) -> str:
        """ONION_CLIENT_AUTH_VIEW: the keys this tor uses for address."""
        service = address.removesuffix(".onion")
        return str(self.controller.msg(f"ONION_CLIENT_AUTH_VIEW {service}"))

    def stop(self) -> None:
        self.controller.close()  # the owning connection: tor exits with it
        self.process.terminate()
        self.process.wait(10)


def start_tor(directory: Path, *options: str) -> Tor:
    port = free_port()
    (directory / "data").mkdir(mode=0o700)
    (directory / "empty").write_text("")
    (directory / "torrc").write_text("\n".join([
        f"DataDirectory {directory / 'data'}", f"ControlPort 127.0.0.1:{port}",
        "CookieAuthentication 1", "SocksPort 0", "DisableNetwork 1",
        f"Log info file {directory / 'info.log'}", f"__OwningControllerProcess {os.getpid()}",
        *options, ""]))
    process = subprocess.Popen(
        ["tor", "--defaults-torrc", str(directory / "empty"), "-f", str(directory / "torrc")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: port_open(port) or process.poll() is not None, what="tor's ControlPort")
    controller = Controller.from_port("127.0.0.1", port)
    controller.authenticate()
    return Tor(directory, port, process, controller)


@pytest.fixture
def tor(tmp_path: Path) -> Iterator[Tor]:
    """A tor hosting the owner onion (no network: nothing is published); the HiddenServiceDir
    holds the lock entry before it starts, as the stack's entrypoint makes it."""
    (tmp_path / "hs").mkdir(mode=0o700)
    OwnerAccess(tmp_path / "hs", tmp_path / "authorized_keys").ensure_lock()
    tor = start_tor(tmp_path, f"HiddenServiceDir {tmp_path / 'hs'}",
                    "HiddenServicePort 22 127.0.0.1:1")
    try:
        wait_for(lambda: (tmp_path / "hs" / "hostname").exists(), what="the hostname file")
        yield tor
    finally:
        tor.stop()


@pytest.fixture
def laptop_tor(tmp_path: Path) -> Iterator[Tor]:
    """The laptop's tor, with a ClientOnionAuthDir (empty at start)."""
    (tmp_path / "laptop").mkdir()
    (tmp_path / "laptop" / "onion_auth").mkdir(mode=0o700)
    tor = start_tor(tmp_path / "laptop", f"ClientOnionAuthDir {tmp_path / 'laptop' / 'onion_auth'}")
    try:
        yield tor
    finally:
        tor.stop()


def test_add_and_remove_reload_tor_without_a_restart(tor: Tor) -> None:
    pid = tor.process.pid
    before = tor.loads()
    assert before[-1] == ["_lock"]

    added = tor.owner("add", "laptop")
    assert added.returncode == 0, added.stderr
    assert "tor reloaded" in added.stdout
    removed = tor.owner("remove", "laptop")
    assert removed.returncode == 0, removed.stderr

    assert tor.loads()[len(before):] == [["_lock", "laptop"], ["_lock"]]
    assert tor.process.poll() is None and tor.process.pid == pid


def test_join_puts_the_key_where_tor_reads_it_and_reloads(tor: Tor, laptop_tor: Tor,
                                                         tmp_path: Path) -> None:
    """Loaded from the file (Flags=Permanent): it survives restarts and NEWNYM, which
    drops keys added over the ControlPort."""
    added = tor.owner("add", "laptop")
    address = (tor.hs_dir / "hostname").read_text().strip()
    laptop = {"HOME": str(tmp_path / "home"),
              "ONIONPOST_TOR_CONTROL": f"127.0.0.1:{laptop_tor.control_port}",
              "ONIONPOST_TOR_COOKIE_FILE": str(laptop_tor.directory / "data" /
                                               "control_auth_cookie")}

    joined = laptop_tor.owner("join", stdin=added.stdout, **laptop)

    assert joined.returncode == 0, joined.stderr
    auth = laptop_tor.directory / "onion_auth" / "onionpost-owner.auth_private"
    assert f"wrote {auth}\n" in joined.stdout
    assert "ClientOnionAuthDir" not in joined.stdout  # tor has one: nothing to add
    assert "tor: the key is in use now" in joined.stdout
    private = auth.read_text().split(":")[-1].strip()
    assert private in added.stdout
    view = laptop_tor.client_keys(address)
    assert "x25519:" in view and "Flags=Permanent" in view, view
