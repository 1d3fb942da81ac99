"""Round trips per message over a slow circuit: a SOCKS5 relay on 127.0.0.1 in front of
ingest delays every chunk by a one-way latency (50 ms, 300 ms) and counts turns (how often
the client waited for the server: the banner, then each reply it needed before going on).
Tor's stream set-up (one round trip) is played before the first byte, for every client.

Rows: onionpost-sendmail in-process through tor_connector (default, and
ONIONPOST_SEND_STARTTLS=on), swaks with and without --pipeline (through the relay as a plain
forwarder: swaks has no SOCKS). Seconds are from the relay's accept to the client's close.
Environment: BENCH_RUNS messages per row and latency (default 3), BENCH_LATENCIES
("0.05,0.3"). For today's figures run it with the code of before (PYTHONPATH pointing at an
older `services/`): that ingest offers no PIPELINING and that sendmail uses STARTTLS.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.servers import IngestProcess, RedisServer
from tests.support.slow_relay import SlowRelay, Traffic

from onionpost import onion
from onionpost.sender import invocation, sendmail
from onionpost.sender.transport import tor_connector
from onionpost.settings import Settings

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
LATENCIES = [float(x) for x in os.environ.get("BENCH_LATENCIES", "0.05,0.3").split(",")]


def new_onion() -> str:
    return onion.from_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())


ONION, OURS = new_onion(), new_onion()
LETTER = (f"From: me@{OURS}\nSubject: round trips\n\n" + "A line of the body.\n" * 40).encode()
LIMITS = {"ONIONPOST_CIRCUIT_MESSAGES_PER_MINUTE": "100000", "ONIONPOST_MAX_MESSAGES": "100000",
          "ONIONPOST_CIRCUIT_MAX_SESSIONS": "100"}
Client = Callable[[SlowRelay], None]


def sendmail_client(**settings: Any) -> Client:
    def run(relay: SlowRelay) -> None:
        config = Settings(domain=OURS, send_retry_delays="0", **settings)
        call = invocation.parse(["-i", f"owner@{ONION}"])
        err = io.StringIO()
        code = sendmail.send(call, LETTER, config, lambda _: None,
                             tor_connector("127.0.0.1", relay.port), err=err,
                             out=io.StringIO())
        if code:
            raise RuntimeError(f"sendmail exited {code}: {err.getvalue()}")

    return run


def swaks_client(*extra: str) -> Client:
    def run(relay: SlowRelay) -> None:
        subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(relay.port),
                        "--to", f"owner@{ONION}", "--from", f"me@{OURS}",
                        "--helo", OURS, *extra], capture_output=True, check=True, timeout=120)

    return run


CLIENTS: list[tuple[str, Client, bool]] = [
    ("onionpost-sendmail (default)", sendmail_client(), True),
    ("onionpost-sendmail, ONIONPOST_SEND_STARTTLS=on", sendmail_client(send_starttls="on"),
     True),
    ("swaks", swaks_client(), False),
    ("swaks --pipeline", swaks_client("--pipeline"), False),
]


def measure(client: Client, socks: bool, latency: float, port: int) -> list[Traffic]:
    onions = {ONION: port} if socks else None
    with SlowRelay(latency, onions, forward_to=None if socks else port) as relay:
        for _ in range(RUNS):
            client(relay)
    return relay.connections


def table(ingest: IngestProcess) -> list[str]:
    lines = []
    for name, client, socks in CLIENTS:
        cells, turns = [], set()
        for latency in LATENCIES:
            traffic = measure(client, socks, latency, ingest.port)
            turns |= {t.turns() for t in traffic}
            cells.append(f"{statistics.median(t.seconds for t in traffic):.2f}")
        lines.append(f"| {name} | {'/'.join(map(str, sorted(turns)))} | {' | '.join(cells)} |")
    return lines


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-round-trips-") as tmp:
        base = Path(tmp)
        redis_server = RedisServer(base / "redis").start()
        ingest = IngestProcess(base / "inbox", ONION,
                               {**LIMITS, "ONIONPOST_REDIS_URL": redis_server.url}).start()
        try:
            lines = table(ingest)
        finally:
            ingest.stop()
            redis_server.stop()
    print(f"\none message, one recipient, through a relay that delays each chunk; {RUNS} runs,"
          " seconds per message (median)")
    print("| client | turns | " + " | ".join(f"{lat * 1000:.0f} ms one way" for lat in LATENCIES)
          + " |")
    print("|---|---|" + "---|" * len(LATENCIES))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
