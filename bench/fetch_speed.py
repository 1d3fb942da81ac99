"""Fetch speed: 2,000 messages of 10 KB over ssh on loopback, onionpost fetch against the
seed's rsync and rsync --fsync (both with --remove-source-files), in the same run."""

from __future__ import annotations

import getpass
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.sshd import ONIONPOST, SshServer

from onionpost import maildir

MESSAGES = int(os.environ.get("FETCH_BENCH_MESSAGES", "2000"))
SIZE = 10_000
ROUNDS = int(os.environ.get("FETCH_BENCH_ROUNDS", "5"))


class Bench:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.remote = directory / "server" / "inbox"
        self.local = directory / "laptop" / "inbox"
        self.sshd = SshServer(directory / "sshd")
        self.random = random.Random(2000)

    def start(self) -> None:
        maildir.ensure(self.remote)
        self.sshd.start()
        fetch_key, plain_key = self.sshd.new_key("fetch"), self.sshd.new_key("plain")
        line = subprocess.run(
            [sys.executable, "-m", "onionpost", "fetch", "--print-authorized-key", "-i",
             str(fetch_key), "--remote-onionpost", ONIONPOST, "--remote-maildir",
             str(self.remote)], capture_output=True, text=True, check=True).stdout
        self.sshd.authorize(line)
        self.sshd.authorize(plain_key.with_suffix(".pub").read_text())  # the seed's key
        common = (f"  HostName 127.0.0.1\n  Port {self.sshd.port}\n  User {getpass.getuser()}\n"
                  f"  UserKnownHostsFile {self.sshd.known_hosts}\n  IdentitiesOnly yes\n"
                  "  BatchMode yes\n  LogLevel ERROR\n")
        self.sshd.client_config.write_text(
            f"Host mailbox\n{common}  IdentityFile {fetch_key}\n"
            f"Host seed\n{common}  IdentityFile {plain_key}\n")

    def fill(self) -> None:
        shutil.rmtree(self.local, ignore_errors=True)
        maildir.ensure(self.local)
        body = self.random.randbytes(SIZE)
        for _ in range(MESSAGES):
            name = maildir.file_name(maildir.new_queue_id(), SIZE)
            (self.remote / "new" / name).write_bytes(body)
        subprocess.run(["sync"], check=True)

    def check(self) -> None:
        here = len(os.listdir(self.local / "new"))
        left = len(os.listdir(self.remote / "new"))
        if here != MESSAGES or left:
            raise RuntimeError(f"bench run incomplete: {here} here, {left} left on the server")

    def onionpost(self) -> None:
        subprocess.run([sys.executable, "-m", "onionpost", "fetch", "--ssh",
                        f"ssh -F {self.sshd.client_config}", "mailbox", "--to",
                        str(self.local)], check=True, capture_output=True)

    def rsync(self, *extra: str) -> None:
        subprocess.run(["rsync", "-rltv", *extra, "-e", f"ssh -F {self.sshd.client_config}",
                        "--remove-source-files", f"seed:{self.remote}/new/",
                        f"{self.local}/new"], check=True, capture_output=True)


def _rsync_has_fsync() -> bool:
    result = subprocess.run(["rsync", "--help"], capture_output=True, text=True, check=False)
    return "--fsync" in result.stdout


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="fetch-bench-") as directory:
        bench = Bench(Path(directory))
        bench.start()
        contenders: dict[str, Callable[[], None]] = {
            "onionpost fetch": bench.onionpost,
            "rsync -rltv --remove-source-files (seed)": bench.rsync,
        }
        if _rsync_has_fsync():
            contenders["rsync -rltv --fsync --remove-source-files"] = \
                lambda: bench.rsync("--fsync")
        times: dict[str, list[float]] = {name: [] for name in contenders}
        try:
            for _ in range(ROUNDS):
                for name, run in contenders.items():
                    bench.fill()
                    started = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - started)
                    bench.check()
        finally:
            bench.sshd.stop()
    _print(times)


def _print(times: dict[str, list[float]]) -> None:
    reference = statistics.median(times.get("rsync -rltv --fsync --remove-source-files")
                                  or times["rsync -rltv --remove-source-files (seed)"])
    print(f"{MESSAGES} messages x {SIZE // 1000} KB over ssh on 127.0.0.1, "
          f"median of {ROUNDS} rounds (interleaved)")
    print(f"{'tool':<45} {'seconds':>8} {'msgs/s':>8} {'vs rsync --fsync':>17}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<45} {median:8.2f} {MESSAGES / median:8.0f} "
              f"{median / reference:16.2f}x")
