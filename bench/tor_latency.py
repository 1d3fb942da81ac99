"""Mail over the private Tor network (tests/e2e/tornet.py): cold start and warm latency.

Cold: from the start of a fresh network (key generation included) to the first message
in ingest's new/, COLD_RUNS times, with the fixture's own step timings. Warm: MESSAGES
messages through the client's SOCKS port to <onion>:25 (PROXY protocol on, STARTTLS offered
but not used), each timed from smtplib's sendmail() to the file appearing in new/: once with
a new SMTP session per message on the warm circuit, once all in one session.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tests.e2e.tornet import TorNetwork
from tests.support.net import free_port, wait_for
from tests.support.servers import IngestProcess, RedisServer

COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "3"))
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "50"))
INGEST = {"ONIONPOST_PROXY_PROTOCOL": "true", "ONIONPOST_PROXY_TIMEOUT": "5",
          "ONIONPOST_CIRCUIT_MESSAGES_PER_MINUTE": "100000", "ONIONPOST_MAX_MESSAGES": "100000"}
T = TypeVar("T")
BODY = b"Subject: bench\r\n\r\n" + b"Benchmark body line.\r\n" * 40


def wait_for_file(directory: Path, count: int, timeout: float = 60.0) -> None:
    """Until directory holds `count` files (polled every 2 ms)."""
    wait_for(lambda: len(os.listdir(directory)) >= count, timeout,
             f"message {count} in {directory}", interval=0.002)


class Bench:
    """One network, one redis-server, one ingest behind an onion service."""

    def __init__(self, base: Path, redis_url: str) -> None:
        self.base = base
        self.redis_url = redis_url
        self.network = TorNetwork(base / "tornet")
        self.ingest: IngestProcess | None = None
        self.address = ""

    def start(self) -> dict[str, float]:
        """Bring everything up and deliver one message; the seconds of every step."""
        began = time.perf_counter()
        port = free_port()
        self.network.start()
        service = self.network.add_onion_service("bench", {25: port}, proxy_protocol=True)
        uploaded = time.perf_counter() - began
        self.address = service.address
        self.ingest = IngestProcess(self.base / "inbox", self.address,
                                    {**INGEST, "ONIONPOST_REDIS_URL": self.redis_url},
                                    port=port)
        self.ingest.start()
        ingest_ready = time.perf_counter() - began
        self.send_one(isolation="cold")
        steps = {f"network: {name}": seconds for name, seconds in self.network.timings.items()}
        return {**steps, "descriptor uploaded": uploaded, "ingest listening": ingest_ready,
                "first message in new/": time.perf_counter() - began}

    @property
    def new_dir(self) -> Path:
        assert self.ingest is not None
        return self.ingest.maildir / "new"

    def send_one(self, isolation: str) -> float:
        count = len(os.listdir(self.new_dir)) if self.new_dir.exists() else 0
        began = time.perf_counter()
        with self.network.smtp(self.address, isolation=isolation) as client:
            client.sendmail("bench@example.onion", [f"owner@{self.address}"], BODY)
        wait_for_file(self.new_dir, count + 1)
        return time.perf_counter() - began

    def one_session(self, isolation: str, messages: int) -> list[float]:
        results = []
        with self.network.smtp(self.address, isolation=isolation) as client:
            for _ in range(messages):
                count = len(os.listdir(self.new_dir))
                began = time.perf_counter()
                client.sendmail("bench@example.onion", [f"owner@{self.address}"], BODY)
                wait_for_file(self.new_dir, count + 1)
                results.append(time.perf_counter() - began)
        return results

    def stop(self) -> None:
        if self.ingest:
            self.ingest.stop()
        self.network.stop()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def row(name: str, values: list[float]) -> str:
    return (f"| {name} | {len(values)} | {statistics.median(values):.2f} | "
            f"{percentile(values, 0.95):.2f} | {min(values):.2f} | {max(values):.2f} |")


def with_bench(redis_url: str, use: Callable[[Bench], T]) -> T:
    with tempfile.TemporaryDirectory(prefix="bench-tor-") as base:
        bench = Bench(Path(base), redis_url)
        try:
            return use(bench)
        finally:
            bench.stop()


def warm_rows(bench: Bench) -> list[str]:
    bench.start()
    bench.send_one(isolation="warm")  # builds the circuit that the timed messages reuse
    per_session = [bench.send_one(isolation="warm") for _ in range(MESSAGES)]
    same_session = bench.one_session("warm", MESSAGES)
    return [row("new SMTP session per message, warm circuit", per_session),
            row("one SMTP session, message after message", same_session)]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-tor-redis-") as redis_dir:
        redis = RedisServer(Path(redis_dir)).start()
        try:
            colds = [with_bench(redis.url, Bench.start) for _ in range(COLD_RUNS)]
            rows = with_bench(redis.url, warm_rows)
        finally:
            redis.stop()
    print(f"Cold start, seconds since TorNetwork.start() (keys included; {COLD_RUNS} runs):")
    print("| step | median | min | max |\n|---|---|---|---|")
    for step in colds[0]:
        values = [cold[step] for cold in colds]
        print(f"| {step} | {statistics.median(values):.1f} | {min(values):.1f} |"
              f" {max(values):.1f} |")
    print(f"\nWarm: sendmail() to the file in new/, seconds ({MESSAGES} messages per row):")
    print("| mode | messages | p50 | p95 | min | max |\n|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
