"""A server Maildir behind a real sshd with the documented forced-command key, a laptop
Maildir, and `onionpost fetch` run as the owner would run it (ssh config alias `mailbox`)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from onionpost import maildir
from tests.support.sshd import ALIAS, ONIONPOST, SshServer, descendants

FETCH = [sys.executable, "-m", "onionpost", "fetch"]


class FetchRig:
    mode_file: Path  # set by test_fetch_hostile's rig: the lying server's mode and log
    request_log: Path

    def __init__(self, directory: Path, seed: int = 8, remote: Path | None = None) -> None:
        self.directory = directory
        self.sshd = SshServer(directory / "sshd")
        self.remote = remote or directory / "server" / "inbox"
        self.local = directory / "laptop" / "inbox"
        self.random = random.Random(seed)
        self.sent: dict[str, bytes] = {}   # unique name -> content, all ever delivered

    def __enter__(self) -> FetchRig:
        maildir.ensure(self.remote)
        self.sshd.start()
        self.key = self.sshd.new_key("owner")
        self.sshd.authorize(self.authorized_line("--remote-maildir", str(self.remote)))
        self.sshd.write_client_config(self.key)
        return self

    def __exit__(self, *_: object) -> None:
        self.sshd.stop()

    def authorized_line(self, *args: str) -> str:
        """The line `onionpost fetch --print-authorized-key` documents, for our key."""
        result = subprocess.run(
            [*FETCH, "--print-authorized-key", "-i", str(self.key),
             "--remote-onionpost", ONIONPOST, *args],
            capture_output=True, text=True, check=True)
        return result.stdout.strip()

    def deliver(self, count: int, size: int = 2000, flagged: int = 0) -> list[str]:
        """count new messages on the server; the last `flagged` of them in cur/ as seen."""
        names = []
        for index in range(count):
            body = self.random.randbytes(size)
            name = maildir.file_name(maildir.new_queue_id(), size)
            sub = "new"
            if index >= count - flagged:
                sub, name = "cur", name + ":2,S"
            (self.remote / sub / name).write_bytes(body)
            self.sent[name.partition(":")[0]] = body
            names.append(f"{sub}/{name}")
        return names

    def command(self, *args: str) -> list[str]:
        return [*FETCH, "--ssh", self.sshd.ssh_command(), ALIAS, "--to", str(self.local),
                *args]

    def fetch(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), capture_output=True, text=True,
                              timeout=timeout)

    def start_fetch(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def remote_names(self) -> list[str]:
        return sorted(os.listdir(self.remote / "new") + os.listdir(self.remote / "cur"))

    def local_files(self) -> list[Path]:
        return [path for sub in ("new", "cur") if (self.local / sub).exists()
                for path in sorted((self.local / sub).iterdir())]

    def local_count(self) -> int:
        try:
            return len(os.listdir(self.local / "new")) + len(os.listdir(self.local / "cur"))
        except FileNotFoundError:
            return 0

    def local_messages(self) -> dict[str, bytes]:
        """unique name -> content; fails on a message that is here twice."""
        found: dict[str, bytes] = {}
        for path in self.local_files():
            unique = path.name.partition(":")[0]
            assert unique not in found, f"{unique} is here twice"
            found[unique] = path.read_bytes()
        return found

    def serve_pids(self) -> list[int]:
        if self.sshd.process is None:
            return []
        return [pid for pid, cmd in descendants(self.sshd.process.pid).items()
                if "fetch-serve" in cmd]
