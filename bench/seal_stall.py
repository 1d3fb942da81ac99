"""How long a big encrypted message's seal freezes the other sessions of its ingest worker:
sealed in ingest's own thread (pysequoia holds the GIL: the anchor, what ingest did before)
and in a child process (ingest/seal_child.py), in the same run, rounds interleaved.

Each round, per setup: a watcher session sends NOOP every 2 ms and times each round trip,
while a second session sends a 10 MB message (BENCH_SEAL_MB) and waits for its 250. The
stall is the worst round trip of a NOOP sent between the end of that DATA and its reply
(the seal and the store). Also printed: that time (end of DATA -> 250). Two ingest
processes (ONIONPOST_INGEST_WORKERS=1, a key made by gpg), one with
ONIONPOST_PGP_SEAL_PROCESS_SIZE=1GB (every seal in the thread), one with the default.
Environment: BENCH_ROUNDS (7), BENCH_SEAL_MB (10)."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import IngestProcess, RedisServer
from tests.support.smtp import RawSMTP, session_until_data

from bench.ingest_throughput import owner_key

DOMAIN = "bench.onion"
RCPT = f"box@{DOMAIN}"
NOOP_PACE = 0.002
GOAL = 5.0


@dataclass
class Round:
    stall_ms: float  # the worst NOOP round trip during the seal
    seal_ms: float  # end of DATA -> 250


@dataclass
class Watcher:
    """A session that times NOOPs until told to stop: (sent, answered) pairs."""
    port: int
    trips: list[tuple[float, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with RawSMTP(self.port, timeout=60) as client:
            client.greeting()
            client.command(b"EHLO watcher")
            while not self.stop.is_set():
                sent = time.perf_counter()
                reply = client.command(b"NOOP")
                assert reply is not None and reply.code == 250, reply
                self.trips.append((sent, time.perf_counter()))
                time.sleep(NOOP_PACE)


def one_round(port: int, message: bytes) -> Round:
    watcher = Watcher(port)
    thread = threading.Thread(target=watcher.run)
    thread.start()
    try:
        with RawSMTP(port, timeout=120) as client:
            client.greeting()
            session_until_data(client, RCPT)
            client.send(message)
            ended = time.perf_counter()
            client.send(b".\r\n")
            reply = client.reply()
            answered = time.perf_counter()
            assert reply is not None and reply.code == 250, reply
    finally:
        watcher.stop.set()
        thread.join()
    during = [back - sent for sent, back in watcher.trips if back >= ended and sent <= answered]
    return Round(max(during, default=answered - ended) * 1000, (answered - ended) * 1000)


def start_ingest(base: Path, redis: RedisServer, key: Path, process_size: str | None
                 ) -> IngestProcess:
    return IngestProcess(base / "inbox", DOMAIN, {
        "ONIONPOST_REDIS_URL": redis.url, "ONIONPOST_INGEST_WORKERS": "1",
        "ONIONPOST_PGP_KEY": str(key), "ONIONPOST_MAX_MESSAGE_SIZE": "100MB",
        "ONIONPOST_MAX_BYTES": "10GB", "ONIONPOST_MAX_MESSAGES": "100000",
        "ONIONPOST_JUNK_COMMAND_LIMIT": "1000000000",
        **({"ONIONPOST_PGP_SEAL_PROCESS_SIZE": process_size} if process_size else {}),
    }).start()


def big_message(megabytes: int) -> bytes:
    line = b"0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\r\n"
    return (b"From: a@example.org\r\nSubject: big\r\n\r\n"
            + line * (megabytes * 1_000_000 // len(line)))


def main() -> None:
    rounds = int(os.environ.get("BENCH_ROUNDS", "7"))
    megabytes = int(os.environ.get("BENCH_SEAL_MB", "10"))
    base = Path(tempfile.mkdtemp(prefix="onionpost-bench-seal-"))
    message = big_message(megabytes)
    print(f"{megabytes} MB messages, {rounds} rounds; load before: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    redis = RedisServer(base / "redis").start()
    setups = {"in ingest's thread (before)": "1GB", "in a seal child (after)": None}
    results: dict[str, list[Round]] = {name: [] for name in setups}
    ingests = {}
    try:
        key = owner_key(base)
        ingests = {name: start_ingest(base / str(n), redis, key, size)
                   for n, (name, size) in enumerate(setups.items())}
        for _ in range(rounds):
            for name, ingest in ingests.items():
                results[name].append(one_round(ingest.port, message))
    finally:
        for ingest in ingests.values():
            ingest.stop()
        redis.stop()
        subprocess.run(["rm", "-rf", str(base)], check=False)
    report(results)


def report(results: dict[str, list[Round]]) -> None:
    print(f"{'sealed':<30}{'stall ms (median)':>19}{'seal ms (median)':>18}   stalls per round")
    medians = []
    for name, runs in results.items():
        stall = statistics.median(run.stall_ms for run in runs)
        medians.append(stall)
        print(f"{name:<30}{stall:>19.1f}{statistics.median(run.seal_ms for run in runs):>18.1f}"
              f"   {' '.join(f'{run.stall_ms:.0f}' for run in runs)}")
    ratio = medians[0] / medians[1]
    print(f"stall before / after: {ratio:.1f}x (goal >= {GOAL:.0f}x: "
          f"{'met' if ratio >= GOAL else 'NOT met'}); load after: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
