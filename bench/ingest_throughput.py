"""Durable ingest throughput against Postfix, in the same run, with Postfix's smtp-source.

10 KB messages, 20 concurrent sessions, one message per SMTP session (onion senders open a
circuit per message). onionpost counts a message when smtp-source got its 250 (ingest
fsyncs file and directory entry before answering); Postfix counts it when virtual(8) has put
it into the Maildir (polled), and we also show when smtp-source finished against it.
Both Maildirs live in one temporary directory on the same filesystem (see TMPDIR below).

Environment: BENCH_MESSAGES (default 3000), BENCH_ROUNDS (3), BENCH_WORKERS ("1,2": ingest
process counts to measure), BENCH_FSYNC ("group,file": ONIONPOST_FSYNC modes to measure),
BENCH_PGP ("1:group": workers:mode setups measured again with encryption at rest, to a key
made by gpg; empty: none), BENCH_KEEP_ALIVE=1 (-d: many messages per session),
BENCH_LARGE_MESSAGES (100; 0: none): a second table with messages of 1 MB (Postfix,
onionpost workers=1 fsync=group, plain, encrypted, and encrypted with every message sealed
in a child process: ONIONPOST_PGP_SEAL_PROCESS_SIZE=0), BENCH_BASELINE=<git revision>: the
encrypted setups again with that revision's ingest (bench/baseline.py), in the same run.

"CPU ms/msg" is the CPU time (user + system) that the ingest processes (parent and workers)
spent while smtp-source ran, divided by the messages: start-up is not counted.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from tests.support.gpg import GnuPG
from tests.support.servers import IngestProcess, RedisServer

from bench.baseline import export
from bench.postfix_reference import PostfixReference

DOMAIN = "bench.onion"
SESSIONS = 20
PAYLOAD = 10_240
LARGE_PAYLOAD = 1_000_000
POLL_SECONDS = 0.02


@dataclass
class Run:
    messages: int
    seconds: float  # first connection to the last message safe on disk
    client_seconds: float  # until smtp-source finished
    cpu_ms: float | None = None  # ingest's CPU per message (onionpost rows only)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


@dataclass(frozen=True)
class Setup:
    workers: int
    fsync: str
    pgp_key: Path | None = None  # encryption at rest to this key
    seal_process_size: str | None = None  # ONIONPOST_PGP_SEAL_PROCESS_SIZE, when not default
    baseline: Path | None = None  # another revision's services/ (BENCH_BASELINE)

    @property
    def name(self) -> str:
        return (f"onionpost workers={self.workers} fsync={self.fsync}"
                + (" pgp" if self.pgp_key else "")
                + (f" child>{self.seal_process_size}" if self.seal_process_size else "")
                + (" @baseline" if self.baseline else ""))


def smtp_source(port: int, messages: int, keep_alive: bool, payload: int) -> list[str]:
    return ["smtp-source", "-s", str(SESSIONS), "-m", str(messages), "-l", str(payload),
            "-M", "client.invalid", "-f", "sender@client.invalid", "-t", f"box@{DOMAIN}",
            *(["-d"] if keep_alive else []), f"127.0.0.1:{port}"]


def send(port: int, messages: int, keep_alive: bool,
         delivered: Callable[[], int], payload: int) -> Run:
    """Run smtp-source, then wait until `delivered()` reaches `messages`."""
    start = time.monotonic()
    client = subprocess.Popen(smtp_source(port, messages, keep_alive, payload),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client_seconds = 0.0
    while True:
        if not client_seconds and client.poll() is not None:
            client_seconds = time.monotonic() - start
            if client.returncode:
                raise RuntimeError(f"smtp-source failed: {client.stderr.read().decode()}")
        count = delivered()
        if count >= messages and client_seconds:
            return Run(count, time.monotonic() - start, client_seconds)
        if client_seconds and time.monotonic() - start > client_seconds + 120:
            raise RuntimeError(f"only {count} of {messages} messages arrived")
        time.sleep(POLL_SECONDS)


def count_new(maildir: Path) -> int:
    try:
        return sum(1 for _ in os.scandir(maildir / "new"))
    except FileNotFoundError:
        return 0


def ingest_round(base: Path, redis: RedisServer, setup: Setup, messages: int,
                 keep_alive: bool, payload: int = PAYLOAD) -> Run:
    maildir = base / "inbox"
    ingest = IngestProcess(maildir, DOMAIN, {
        "ONIONPOST_REDIS_URL": redis.url, "ONIONPOST_INGEST_WORKERS": str(setup.workers),
        "ONIONPOST_FSYNC": setup.fsync,
        **({"ONIONPOST_PGP_KEY": str(setup.pgp_key)} if setup.pgp_key else {}),
        **({"ONIONPOST_PGP_SEAL_PROCESS_SIZE": setup.seal_process_size}
           if setup.seal_process_size else {}),
        **({"PYTHONPATH": str(setup.baseline)} if setup.baseline else {}),
        "ONIONPOST_MAX_MESSAGES": str(messages * 2), "ONIONPOST_MAX_BYTES": "10GB",
        "ONIONPOST_CIRCUIT_MAX_SESSIONS": str(SESSIONS * 2),
        "ONIONPOST_CIRCUIT_MESSAGES_PER_MINUTE": str(messages * 100)})
    base.mkdir(parents=True)
    ingest.start()
    try:
        assert ingest.process is not None
        cpu_before = cpu_seconds(ingest.process.pid)
        # Every 250 came after the fsyncs: smtp-source's end is the last durable message.
        run = send(ingest.port, messages, keep_alive, lambda: count_new(maildir), payload)
        cpu_ms = (cpu_seconds(ingest.process.pid) - cpu_before) * 1000 / messages
        return Run(run.messages, run.client_seconds, run.client_seconds, cpu_ms)
    finally:
        ingest.stop()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (ingest's pre-forked workers)."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                              text=True).stdout.split()
    total = 0
    for process in [str(pid), *children]:
        fields = Path(f"/proc/{process}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def postfix_round(postfix: PostfixReference, number: int | str, messages: int,
                  keep_alive: bool, payload: int = PAYLOAD) -> Run:
    postfix.set_aside_maildir(str(number))
    run = send(postfix.port, messages, keep_alive, postfix.delivered, payload)
    postfix.wait_idle()
    return run


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def table(results: dict[str, list[Run]], reference: str) -> str:
    reference_rate = statistics.median(run.rate for run in results[reference])
    lines = [f"{'receiver':<34}{'messages':>9}{'seconds':>9}{'client s':>10}{'msg/s':>8}"
             f"{'x Postfix':>11}{'CPU ms/msg':>12}   rounds (msg/s)"]
    for name, runs in results.items():
        rate = statistics.median(run.rate for run in runs)
        seconds = statistics.median(run.seconds for run in runs)
        client = statistics.median(run.client_seconds for run in runs)
        rounds = " ".join(f"{run.rate:.0f}" for run in runs)
        cpu = [run.cpu_ms for run in runs if run.cpu_ms is not None]
        cpu_text = f"{statistics.median(cpu):.2f}" if cpu else "-"
        lines.append(f"{name:<34}{runs[0].messages:>9}{seconds:>9.2f}{client:>10.2f}"
                     f"{rate:>8.0f}{rate / reference_rate:>11.2f}{cpu_text:>12}   {rounds}")
    return "\n".join(lines)


def owner_key(base: Path) -> Path:
    """An owner's key as gpg makes it (ed25519/cv25519), in a throw-away home."""
    gpg = GnuPG(base / "gnupg")
    gpg.make_key("owner@bench.onion")
    path = base / "owner.asc"
    path.write_bytes(gpg.export("owner@bench.onion"))
    return path


def setups_from_env(key: Path) -> list[Setup]:
    # (workers, ONIONPOST_FSYNC) pairs: the default group commit, and an fsync per file.
    setups = [Setup(int(n), mode) for mode in os.environ.get("BENCH_FSYNC", "group,file").split(",")
              for n in os.environ.get("BENCH_WORKERS", "1,2").split(",")]
    for pair in os.environ.get("BENCH_PGP", "1:group").split(","):
        if pair.strip():
            workers, _, mode = pair.partition(":")
            setups.append(Setup(int(workers), mode or "group", key))
    return setups


def main() -> None:
    messages = int(os.environ.get("BENCH_MESSAGES", "3000"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    large = int(os.environ.get("BENCH_LARGE_MESSAGES", "100"))
    keep_alive = os.environ.get("BENCH_KEEP_ALIVE") == "1"
    base = Path(tempfile.mkdtemp(prefix="onionpost-bench-ingest-"))
    base.chmod(0o755)  # Postfix's virtual(8) runs as nobody and must reach its Maildir
    key = owner_key(base)
    setups = setups_from_env(key)
    # The last: every 1 MB message sealed in a child (the default keeps them in the thread).
    large_setups = ([Setup(1, "group"), Setup(1, "group", key), Setup(1, "group", key, "0")]
                    if large else [])
    revision = os.environ.get("BENCH_BASELINE")
    if revision:  # the same encrypted setups, run by that revision's ingest
        baseline = export(revision, base)
        setups += [replace(setup, baseline=baseline) for setup in setups if setup.pgp_key]
        large_setups.append(Setup(1, "group", key, baseline=baseline))
    print(f"{messages} messages of {PAYLOAD} B, {SESSIONS} sessions, "
          f"{'-d (kept sessions)' if keep_alive else 'one message per session'}, "
          f"{rounds} rounds; Maildirs under {base}; load before: {load()}", flush=True)
    redis = RedisServer(base / "redis").start()
    postfix = PostfixReference(base / "postfix", DOMAIN)
    reference = "postfix (virtual)"
    results: dict[str, list[Run]] = {reference: []}
    results.update({setup.name: [] for setup in setups})
    large_results: dict[str, list[Run]] = {reference: []}
    large_results.update({setup.name: [] for setup in large_setups})
    try:
        postfix.start()
        for number in range(rounds):
            results[reference].append(postfix_round(postfix, number, messages, keep_alive))
            for index, setup in enumerate(setups):
                results[setup.name].append(ingest_round(
                    base / f"ingest-{index}-{number}", redis, setup, messages, keep_alive))
            if not large:
                continue
            large_results[reference].append(postfix_round(
                postfix, f"large-{number}", large, keep_alive, LARGE_PAYLOAD))
            for index, setup in enumerate(large_setups):
                large_results[setup.name].append(ingest_round(
                    base / f"large-{index}-{number}", redis, setup, large, keep_alive,
                    LARGE_PAYLOAD))
    finally:
        postfix.stop()
        postfix.cleanup()
        redis.stop()
        subprocess.run(["rm", "-rf", str(base)], check=False)
    print(table(results, reference))
    if large:
        print(f"\n{large} messages of {LARGE_PAYLOAD} B, {SESSIONS} sessions")
        print(table(large_results, reference))
    print(f"medians of {rounds} rounds; 'seconds' = until the last message was on disk; "
          f"load after: {load()}")


if __name__ == "__main__":
    main()
