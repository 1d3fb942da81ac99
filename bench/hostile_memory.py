"""Ingest's memory under big unfinished messages: 30 sessions each send 9 MB of DATA and hold
it without the end, then all finish together, against a real `onionpost ingest` (10 MB size
limit) while an honest sender delivers small messages on its own session.

Environment: BENCH_ATTACK_SESSIONS (30), BENCH_ATTACK_MB (9): the attack's shape;
BENCH_ATTACK_PGP=1: with encryption at rest (a throw-away key made by gpg).
`python -m bench.hostile_memory` prints the rows; bench/hostile.py puts them in its table.
"""

from __future__ import annotations

import os
import smtplib
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.gpg import GnuPG
from tests.support.servers import IngestProcess, RedisServer
from tests.support.unfinished_data import UnfinishedData, memory_kb

DOMAIN = "bench.onion"
RCPT = f"box@{DOMAIN}"
MB = 1_000_000
HELD_GOAL_MB = 150
PEAK_GOAL_MB = 250
ATTACK = "unfinished DATA"


@dataclass
class HonestSender:
    """Small messages one after another on its own session, until stopped."""

    port: int
    sent: int = 0
    accepted: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> HonestSender:
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()
        return self

    def join(self) -> None:
        self.stop.set()
        if self.thread:
            self.thread.join(60)

    def _send(self) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=60) as client:
            while not self.stop.wait(0.2):
                self.sent += 1
                message = f"Subject: honest {self.sent}\r\n\r\nhello\r\n".encode()
                try:
                    refused = client.sendmail("honest@example.org", [RCPT], message)
                except smtplib.SMTPResponseException:
                    continue
                self.accepted += not refused


def row(metric: str, value: str, goal: str, met: bool) -> tuple[str, str, str, str, bool]:
    return ATTACK, metric, value, goal, met


def attack_unfinished_data() -> list[tuple[str, str, str, str, bool]]:
    """(attack, metric, value, goal, met) rows: RSS while the sessions hold their DATA, peak
    RSS once they all finished, and the honest sender's messages meanwhile."""
    sessions = int(os.environ.get("BENCH_ATTACK_SESSIONS", "30"))
    size = int(float(os.environ.get("BENCH_ATTACK_MB", "9")) * MB)
    with tempfile.TemporaryDirectory(prefix="onionpost-bench-memory-") as base:
        redis = RedisServer(Path(base) / "redis").start()
        ingest = IngestProcess(Path(base) / "inbox", DOMAIN, {
            **(owner_key(Path(base)) if os.environ.get("BENCH_ATTACK_PGP") == "1" else {}),
            "ONIONPOST_REDIS_URL": redis.url, "ONIONPOST_MAX_MESSAGE_SIZE": "10MB",
            "ONIONPOST_MAX_BYTES": "10GB", "ONIONPOST_MAX_MESSAGES": "100000",
            "ONIONPOST_MAX_SESSIONS": str(sessions + 10),
            "ONIONPOST_CIRCUIT_MAX_SESSIONS": str(sessions + 10),
            "ONIONPOST_CIRCUIT_MESSAGES_PER_MINUTE": "100000"}).start()
        try:
            return _attack(ingest, sessions, size)
        finally:
            ingest.stop()
            redis.stop()


def owner_key(base: Path) -> dict[str, str]:
    """ONIONPOST_PGP_KEY: an owner's key made by gpg in a throw-away home."""
    gpg = GnuPG(base / "gnupg")
    gpg.make_key("owner@bench.onion")
    (base / "owner.asc").write_bytes(gpg.export("owner@bench.onion"))
    return {"ONIONPOST_PGP_KEY": str(base / "owner.asc")}


def _attack(ingest: IngestProcess, sessions: int, size: int) -> list[tuple[str, str, str,
                                                                          str, bool]]:
    assert ingest.process is not None
    pid = ingest.process.pid
    at_rest_mb = memory_kb(pid) * 1024 / MB
    honest = HonestSender(ingest.port).start()
    attack = UnfinishedData(ingest.port, RCPT, sessions, size).open()
    try:
        attack.send()
        held_mb = memory_kb(pid) * 1024 / MB
        replies = attack.finish()
    finally:
        attack.close()
        honest.join()
    peak_mb = memory_kb(pid, "VmHWM") * 1024 / MB
    stored = sum(reply.startswith(b"250") for reply in replies)
    shape = f"{sessions} x {size / MB:g} MB"
    if "ONIONPOST_PGP_KEY" in ingest.env:
        shape += " encrypted"
    return [
        row(f"ingest RSS, {shape} unfinished (at rest {at_rest_mb:.0f} MB)",
            f"{held_mb:.0f} MB", f"<= {HELD_GOAL_MB} MB", held_mb <= HELD_GOAL_MB),
        row(f"ingest peak RSS, all {sessions} finish together ({stored} stored)",
            f"{peak_mb:.0f} MB", f"<= {PEAK_GOAL_MB} MB",
            peak_mb <= PEAK_GOAL_MB and stored == sessions),
        row("honest sender's messages accepted meanwhile",
            f"{honest.accepted}/{honest.sent}", "all",
            honest.sent > 0 and honest.accepted == honest.sent),
    ]


def main() -> None:
    for attack, metric, value, goal, met in attack_unfinished_data():
        print(f"{attack:<18}{metric:<62}{value:>10}  goal {goal:<10}{'met' if met else 'NOT MET'}")


if __name__ == "__main__":
    main()
