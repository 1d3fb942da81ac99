"""A real OpenSSH server for the fetch tests: /usr/sbin/sshd on 127.0.0.1, throw-away keys.

The client side gets its own ssh config file (alias `mailbox`, its key, a known_hosts with
the server's host key, StrictHostKeyChecking yes), used as `ssh -F <file>`.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.net import free_port, port_open, wait_for

SSHD = "/usr/sbin/sshd"
ALIAS = "mailbox"
# How the tests' sshd runs onionpost: this checkout's python, whatever PATH sshd sets.
ONIONPOST = f"{sys.executable} -m onionpost"


def keygen(path: Path, comment: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
                    str(path)], check=True)
    return path


@dataclass
class SshServer:
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.host_key = self.directory / "host_key"
        self.authorized_keys = self.directory / "authorized_keys"
        self.log = self.directory / "sshd.log"
        self.client_config = self.directory / "ssh_config"
        self.known_hosts = self.directory / "known_hosts"

    def start(self) -> SshServer:
        if not self.host_key.exists():
            keygen(self.host_key, "test-host")
        self.authorized_keys.touch()
        config = self.directory / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"PidFile {self.directory / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}", f"AllowUsers {getpass.getuser()}",
            "StrictModes no", "UsePAM no", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password", "PrintMotd no", "LogLevel VERBOSE",
            "MaxStartups 50", "",
        ]))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        log = self.log.open("ab")
        self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(lambda: port_open(self.port) or self.process.poll() is not None,
                 what=f"sshd on {self.port}")
        if self.process.poll() is not None:
            raise RuntimeError(f"sshd exited: {self.log.read_text()[-2000:]}")
        host_public = (self.host_key.with_suffix(".pub")).read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_public[0]} "
                                    f"{host_public[1]}\n")
        return self

    def new_key(self, name: str) -> Path:
        return keygen(self.directory / f"{name}_key", name)

    def authorize(self, line: str) -> None:
        with self.authorized_keys.open("a") as handle:
            handle.write(line.strip() + "\n")

    def write_client_config(self, identity: Path) -> Path:
        self.client_config.write_text("\n".join([
            f"Host {ALIAS}", "  HostName 127.0.0.1", f"  Port {self.port}",
            f"  User {getpass.getuser()}", f"  IdentityFile {identity}",
            "  IdentitiesOnly yes", f"  UserKnownHostsFile {self.known_hosts}",
            "  StrictHostKeyChecking yes", "  BatchMode yes", "  LogLevel ERROR", "",
        ]))
        return self.client_config

    def ssh_command(self) -> str:
        return f"ssh -F {self.client_config}"

    def session_pids(self) -> list[int]:
        """The per-connection sshd processes below ours (killing them cuts the connection)."""
        if self.process is None:
            return []
        return [pid for pid, cmd in descendants(self.process.pid).items()
                if cmd.startswith("sshd:")]

    def cut_connections(self) -> int:
        pids = self.session_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


def _processes() -> dict[int, tuple[int, str]]:
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        table[int(entry.name)] = (ppid, comm)
    return table


def descendants(root: int) -> dict[int, str]:
    """pid -> command line of every process below root."""
    table = _processes()
    found: dict[int, str] = {}
    parents = {root}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _) in table.items():
            if ppid in parents and pid not in parents:
                parents.add(pid)
                try:
                    found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(
                        b"\0", b" ").decode(errors="replace")
                except OSError:
                    found[pid] = ""
                changed = True
    return found
