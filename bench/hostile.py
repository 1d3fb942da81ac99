"""Hostile senders against a real `onionpost ingest`, each attack beside an honest sender on
its own Tor circuit (PROXY v1 headers with distinct source addresses, as tor sends them).

- junk lines: 5 sessions' worth of 200 unique ~60 KB junk command lines (1,000 lines, a new
  session on a new circuit whenever ingest closes one); ingest's RSS growth once all are
  closed (goal <= 10 MB).
- long address: 3 attackers at a time, each pipelining 1,800 EHLOs, a 60 KB
  `MAIL FROM:<"a"."a"...@b.onion>`, a valid MAIL and the 60 KB MAIL again (nested), for
  ATTACK_SECONDS; the honest sender's NOOP round trip meanwhile (goal <= 0.5 s max).
- squatting: every slot held by sessions that send a NOOP every SQUAT_NOOP_SECONDS.
  Shortened so that the bench takes a minute: ONIONPOST_MAX_SESSIONS=30 (10 circuits x 3)
  and ONIONPOST_SESSION_LIFETIME=30 (default: data timeout + 5 min = 15 min); squatters
  left after 60 s (goal 0) and a new circuit's greeting then (goal 220).
- unfinished DATA (bench/hostile_memory.py, when present).

Each attack starts its own ingest. Environment: BENCH_ATTACK_SECONDS (10).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.support.servers import IngestProcess, RedisServer
from tests.support.smtp import RawSMTP, circuit_address, proxy_v1

Row = tuple[str, str, str, str, bool]
DOMAIN = "bench.onion"
RCPT = f"owner@{DOMAIN}"
ATTACK_SECONDS = float(os.environ.get("BENCH_ATTACK_SECONDS", "10"))
HONEST_CIRCUIT = 0x7777
PROBE_SECONDS = 0.1
SIXTY_KB_MAIL = ("MAIL FROM:<" + ".".join(['"a"'] * 15_000) + "@b.onion>").encode()
SQUAT_NOOP_SECONDS = 5.0
SQUAT_CIRCUITS = 10
SQUAT_WAIT_SECONDS = 60.0


class Circuits:
    """A new Tor circuit (a PROXY source address) for each call."""

    def __init__(self, first: int) -> None:
        self.next = first

    def connect(self, port: int, timeout: float = 30) -> RawSMTP:
        self.next += 1
        return RawSMTP(port, proxy_line=proxy_v1(circuit_address(self.next)), timeout=timeout)


@contextmanager
def ingest(base: Path, **settings: object) -> Iterator[IngestProcess]:
    redis = RedisServer(base / "redis").start()
    env = {"ONIONPOST_REDIS_URL": redis.url, "ONIONPOST_TLS": "off",
           "ONIONPOST_PROXY_PROTOCOL": "true", "ONIONPOST_LOG_LEVEL": "INFO",
           **{f"ONIONPOST_{key.upper()}": str(value) for key, value in settings.items()}}
    server = IngestProcess(base / "mail" / "inbox", DOMAIN, env).start()
    try:
        yield server
    finally:
        server.stop()
        redis.stop()


def rss_mb(server: IngestProcess) -> float:
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


class HonestSender(threading.Thread):
    """NOOP round trips on its own circuit every PROBE_SECONDS (a new session when ingest
    ends one: NOOPs are junk; its greeting and EHLO are then the round trip timed); at the
    end, one message."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.delivered = False

    def session(self) -> RawSMTP:
        client = RawSMTP(self.port, proxy_v1(circuit_address(HONEST_CIRCUIT)), timeout=60)
        client.greeting()
        client.command(b"EHLO honest.example")
        return client

    def probe(self, client: RawSMTP | None) -> RawSMTP | None:
        """One NOOP round trip, or a new session (greeting and EHLO) when there is none:
        either way, how long an honest sender waited."""
        start = time.monotonic()
        try:
            if client is None:
                client = self.session()
            else:
                reply = client.command(b"NOOP")
                if reply is None or reply.code != 250:
                    client.close()
                    client = None
        except OSError:  # a stall past the client's timeout: counted as it was
            client = None
        self.latencies.append(time.monotonic() - start)
        return client

    def run(self) -> None:
        client = self.probe(None)
        while not self.stop.wait(PROBE_SECONDS):
            client = self.probe(client)
        if client is not None:
            client.close()
        try:
            self.delivered = self.deliver()
        except OSError:
            self.delivered = False

    def deliver(self) -> bool:
        with self.session() as client:
            for line in (b"MAIL FROM:<honest@example.org>", f"RCPT TO:<{RCPT}>".encode(),
                         b"DATA"):
                client.command(line)
            client.send(b"Subject: honest\r\n\r\nhello\r\n.\r\n")
            reply = client.reply()
            return reply is not None and reply.code == 250

    @contextmanager
    def beside(self) -> Iterator[HonestSender]:
        self.start()
        try:
            yield self
        finally:
            self.stop.set()
            self.join(120)

    def rows(self, attack: str) -> list[Row]:
        worst = max(self.latencies, default=float("nan"))
        return [(attack, "honest NOOP max latency", f"{worst:.3f} s", "<= 0.5 s", worst <= 0.5),
                (attack, "honest message delivered", "yes" if self.delivered else "no", "yes",
                 self.delivered)]


def attack_junk_lines() -> list[Row]:
    attack = "junk lines"
    with tempfile.TemporaryDirectory(prefix="onionpost-bench-hostile-") as base, \
            ingest(Path(base)) as server:
        before = rss_mb(server)
        circuits = Circuits(0x1000)
        with HonestSender(server.port).beside() as honest:
            sessions, sent, client = 0, 0, None
            while sent < 1000:
                if client is not None and sent % 200 == 0:  # 5 sessions x 200 lines...
                    client.close()
                    client = None
                if client is None:
                    client, sessions = circuits.connect(server.port), sessions + 1
                    client.greeting()
                    client.command(b"EHLO junk")
                junk = f"X{sent:06d}".encode() * 8_500  # ~60 KB, each one unique
                try:
                    reply = client.command(junk)
                except OSError:
                    reply = None
                if reply is None or reply.code == 421:  # ...or as many as ingest allows
                    client.close()
                    client = None
                    continue
                sent += 1
            client.close()
        time.sleep(1)  # the last sessions' ends are handled
        grown = rss_mb(server) - before
    return [(attack, "RSS growth, all closed", f"{grown:.1f} MB", "<= 10 MB", grown <= 10),
            (attack, "sessions it took", str(sessions), "", True), *honest.rows(attack)]


def long_address_attacker(port: int, circuits: Circuits, stop: threading.Event) -> None:
    payload = (b"EHLO many\r\n" * 1800 + SIXTY_KB_MAIL + b"\r\n"
               + b"MAIL FROM:<a@example.org>\r\n" + SIXTY_KB_MAIL + b"\r\nQUIT\r\n")
    while not stop.is_set():
        with circuits.connect(port) as client, suppress(OSError):  # ingest hangs up
            client.send(payload)
            client.closed(timeout=60)


def attack_long_address() -> list[Row]:
    attack = "long address"
    with tempfile.TemporaryDirectory(prefix="onionpost-bench-hostile-") as base, \
            ingest(Path(base)) as server:
        stop = threading.Event()
        attackers = [threading.Thread(target=long_address_attacker, daemon=True,
                                      args=(server.port, Circuits(0x2000 + n * 0x100), stop))
                     for n in range(3)]
        with HonestSender(server.port).beside() as honest:
            for attacker in attackers:
                attacker.start()
            time.sleep(ATTACK_SECONDS)
            stop.set()
            for attacker in attackers:
                attacker.join(120)
    return honest.rows(attack)


def squatter(port: int, circuit: int, stop: threading.Event, held: list[int]) -> None:
    try:
        client = RawSMTP(port, proxy_v1(circuit_address(circuit)), timeout=60)
        reply = client.greeting()
    except OSError:
        return
    if reply is None or reply.code != 220:
        client.close()
        return
    held.append(circuit)
    try:
        client.command(b"EHLO squatter")
        while not stop.wait(SQUAT_NOOP_SECONDS):
            reply = client.command(b"NOOP")
            if reply is None or reply.code != 250:
                break
        else:
            return  # still holding a slot when the bench looked
    except OSError:
        pass
    finally:
        client.close()
    held.remove(circuit)


def greeting_code(port: int, circuit: int) -> int | None:
    with RawSMTP(port, proxy_v1(circuit_address(circuit)), timeout=30) as client:
        reply = client.greeting()
        return reply.code if reply else None


def attack_squatting() -> list[Row]:
    attack = "squatting"
    with tempfile.TemporaryDirectory(prefix="onionpost-bench-hostile-") as base, \
            ingest(Path(base), max_sessions=30, session_lifetime=30) as server:
        stop = threading.Event()
        held: list[int] = []  # circuits whose session holds a slot now
        squatters = [threading.Thread(target=squatter, daemon=True,
                                      args=(server.port, 0x3000 + n // 3, stop, held))
                     for n in range(SQUAT_CIRCUITS * 3)]
        for thread in squatters:
            thread.start()
        time.sleep(3)
        during = greeting_code(server.port, 0x4000)
        holding = len(held)
        time.sleep(SQUAT_WAIT_SECONDS - 3)
        left = len(held)
        after = greeting_code(server.port, 0x4001)
        stop.set()
        for thread in squatters:
            thread.join(30)
    return [(attack, "slots held at 3 s (of 30)", str(holding), "", True),
            (attack, "new circuit's greeting at 3 s", str(during), "", True),
            (attack, "squatting sessions left at 60 s", str(left), "0", left == 0),
            (attack, "new circuit's greeting at 60 s", str(after), "220", after == 220)]


def attacks() -> list[Callable[[], list[Row]]]:
    chosen = [attack_junk_lines, attack_long_address, attack_squatting]
    if importlib.util.find_spec("bench.hostile_memory"):
        chosen.append(importlib.import_module("bench.hostile_memory").attack_unfinished_data)
    return chosen


def table(rows: list[Row]) -> str:
    lines = ["| attack | metric | value | goal | met |", "|---|---|---|---|---|"]
    lines += [f"| {attack} | {metric} | {value} | {goal} | {verdict(goal, met)} |"
              for attack, metric, value, goal, met in rows]
    return "\n".join(lines)


def verdict(goal: str, met: bool) -> str:
    if not goal:  # a figure shown for context
        return ""
    return "yes" if met else "NO"


def main() -> None:
    rows: list[Row] = []
    for attack in attacks():
        print(f"running {attack.__name__} ...", flush=True)
        rows += attack()
    print(table(rows))
