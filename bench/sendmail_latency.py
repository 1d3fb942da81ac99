"""Time for `onionpost sendmail` to deliver over the private Tor network (tests/e2e/tornet.py).

Three receivers (ingest behind its own onion service, PROXY protocol on, limits raised so
the benchmark is not rate-limited). Two messages: one recipient, and 10 recipients over the
3 onion domains (4 + 3 + 3: three SMTP sessions in parallel, one per domain). Each is sent
BENCH_RUNS times (default 20) in-process through Tor's SOCKS port, then as the installed
`onionpost-sendmail` command (what neomutt waits for: adds interpreter start-up).
The first send to a destination builds its circuit (cold); later sends reuse it, since
sendmail isolates circuits per destination, not per message. p50 is over the warm runs.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.tornet import TorNetwork
from tests.support.net import free_port
from tests.support.servers import IngestProcess, RedisServer

from onionpost.sender import invocation, sendmail
from onionpost.sender.transport import tor_connector
from onionpost.settings import Settings

RUNS = int(os.environ.get("BENCH_RUNS", "20"))
SENDMAIL = Path(sys.executable).parent / "onionpost-sendmail"
LIMITS = {"ONIONPOST_PROXY_PROTOCOL": "true", "ONIONPOST_PROXY_TIMEOUT": "5",
          "ONIONPOST_CIRCUIT_MESSAGES_PER_MINUTE": "100000", "ONIONPOST_MAX_MESSAGES": "100000"}


def message(sender: str, subject: str) -> bytes:
    return (f"From: {sender}\nSubject: {subject}\n\n" + "Benchmark body line.\n" * 40).encode()


def start_receivers(network: TorNetwork, base: Path, redis_url: str) -> list[IngestProcess]:
    receivers = []
    for name in ("alice", "bob", "carol"):
        port = free_port()
        service = network.add_onion_service(f"bench-{name}", {25: port}, proxy_protocol=True)
        ingest = IngestProcess(base / name / "inbox", service.address,
                               {**LIMITS, "ONIONPOST_REDIS_URL": redis_url}, port=port)
        receivers.append(ingest.start())
    return receivers


def timings(send: Callable[[], int]) -> list[float]:
    results = []
    for _ in range(RUNS + 1):
        began = time.perf_counter()
        code = send()
        results.append(time.perf_counter() - began)
        if code != 0:
            raise RuntimeError(f"sendmail exited {code}")
    return results


def in_process(settings: Settings, recipients: list[str], raw: bytes) -> Callable[[], int]:
    connector = tor_connector(*settings.hostport(settings.tor_socks))
    call = invocation.parse(["-oi", *recipients])
    return lambda: sendmail.send(call, raw, settings, lambda _: None, connector,
                                 err=sys.stderr, out=io.StringIO())


def as_command(env: dict[str, str], recipients: list[str], raw: bytes) -> Callable[[], int]:
    return lambda: subprocess.run([str(SENDMAIL), "-oi", *recipients], input=raw, env=env,
                                  check=False).returncode


def row(name: str, seconds: list[float]) -> str:
    cold, warm = seconds[0], seconds[1:]
    return (f"| {name:<44} | {len(warm):>4} | {cold:>6.2f} | {statistics.median(warm):>6.2f} |"
            f" {min(warm):>6.2f} | {max(warm):>6.2f} |")


def measure(network: TorNetwork, receivers: list[IngestProcess]) -> list[str]:
    domains = [ingest.domain for ingest in receivers]
    one = [f"bob@{domains[1]}"]
    ten = [f"user{n}@{domains[n % 3]}" for n in range(10)]
    own = domains[0]
    raw = message(f"alice@{own}", "bench")
    settings = Settings(domain=own, tor_socks=f"127.0.0.1:{network.socks_port}")
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
           "ONIONPOST_DOMAIN": own, "ONIONPOST_TOR_SOCKS": settings.tor_socks,
           "ONIONPOST_ADDRESS_BOOK": os.devnull}
    return [
        row("1 recipient, in-process", timings(in_process(settings, one, raw))),
        row("10 recipients / 3 onions, in-process", timings(in_process(settings, ten, raw))),
        row("1 recipient, onionpost-sendmail command", timings(as_command(env, one, raw))),
        row("10 recipients / 3 onions, onionpost-sendmail command",
            timings(as_command(env, ten, raw))),
    ]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sendmail-") as tmp:
        base = Path(tmp)
        redis_server = RedisServer(base / "redis").start()
        network = TorNetwork(base / "tornet")
        receivers: list[IngestProcess] = []
        try:
            began = time.monotonic()
            network.start()
            receivers = start_receivers(network, base, redis_server.url)
            print(f"private Tor network + 3 onion receivers up in {time.monotonic() - began:.1f} s")
            lines = measure(network, receivers)
        finally:
            for ingest in receivers:
                ingest.stop()
            network.stop()
            redis_server.stop()
    print(f"\nsendmail delivery over the private Tor network, seconds ({RUNS} warm runs)")
    print("| message                                      | runs |  first |    p50 |"
          "    min |    max |")
    print("|---|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
