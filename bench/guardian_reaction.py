"""Guardian reaction: how fast a flood is stopped at the mailbox limit, and what gets past.

Real processes: redis-server, `onionpost ingest`, `onionpost guardian`, `onionpost notifier`
(posting to the ntfy test double). 20 concurrent SMTP sessions flood a mailbox limited to
100 messages.

- Reaction (ROUNDS rounds): from the 250 reply to the message that fills the mailbox to the
  first new session refused with 421 at the greeting. A prober opens a session every
  PROBE_SECONDS and also reads the pause record in Redis, splitting the reaction into the
  guardian's part (event -> pause record) and ingest's part (pause record -> 421).
- Overshoot: a FLOOD_SECONDS flood; halfway the owner fetches everything. Messages stored
  past the limit at any moment (sampled every SAMPLE_SECONDS, and counted from the 250
  replies). The stored count over time is saved as docs/guardian-flood.png.

The seed ran its guardian from cron once a minute: it reacted within 0-60 s and stored
what arrived meanwhile; its row below is that bound at the flood rate measured here.
Environment: BENCH_ROUNDS (5), BENCH_FLOOD_SECONDS (30).
"""

from __future__ import annotations

import os
import smtplib
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from tests.support.flood import Flooder
from tests.support.guardian_rig import ServiceProcess, drain
from tests.support.net import wait_for
from tests.support.ntfy_double import NtfyDouble
from tests.support.servers import IngestProcess, RedisServer

from onionpost import maildir
from onionpost.events import PAUSED_KEY

DOMAIN = "bench.onion"
LIMIT = 100
SESSIONS = 20
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
FLOOD_SECONDS = float(os.environ.get("BENCH_FLOOD_SECONDS", "30"))
PROBE_SECONDS = 0.01
SAMPLE_SECONDS = 0.05
RETRY_PAUSE = 0.1  # a refused flooder knocks again after this (spares the shared machine)
SEED_CRON_SECONDS = 60
PLOT = Path(__file__).resolve().parents[1] / "docs" / "guardian-flood.png"


@dataclass
class Probe:
    """Watches, from outside, when the pause is recorded and when ingest refuses."""

    port: int
    redis_url: str
    paused_at: float | None = None
    refused_at: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        client = redis.Redis.from_url(self.redis_url)
        while not self.stop.is_set() and self.refused_at is None:
            if self.paused_at is None and client.exists(PAUSED_KEY):
                self.paused_at = time.monotonic()
            if greeting(self.port) == 421:
                self.refused_at = time.monotonic()
            time.sleep(PROBE_SECONDS)


def greeting(port: int) -> int:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5):
            return 220
    except smtplib.SMTPConnectError as error:
        return error.smtp_code
    except (smtplib.SMTPException, OSError):
        return 0


@dataclass
class Rig:
    directory: Path
    redis_server: RedisServer
    ntfy: NtfyDouble
    ingest: IngestProcess
    services: list[ServiceProcess]

    @property
    def mailbox(self) -> Path:
        return self.ingest.maildir

    def stop(self) -> None:
        self.ingest.stop()
        for service in self.services:
            service.stop()
        self.ntfy.stop()
        self.redis_server.stop()

    def paused(self) -> bool:
        return bool(redis.Redis.from_url(self.redis_server.url).exists(PAUSED_KEY))

    def empty_and_accepting(self) -> None:
        drain(self.mailbox)
        wait_for(lambda: not self.paused() and greeting(self.ingest.port) == 220, timeout=60,
                 what="the guardian to resume")


def start_rig(directory: Path) -> Rig:
    redis_server = RedisServer(directory / "redis").start()
    ntfy = NtfyDouble(tokens=("tk_bench",)).start()
    mailbox = directory / "mail" / "inbox"
    maildir.ensure(mailbox)
    env = {"ONIONPOST_REDIS_URL": redis_server.url, "ONIONPOST_MAILDIR": str(mailbox),
           "ONIONPOST_MAX_MESSAGES": str(LIMIT), "ONIONPOST_NTFY_URL": ntfy.url,
           "ONIONPOST_NTFY_TOKEN": "tk_bench", "ONIONPOST_NOTIFY_NEW_MAIL": "off",
           "ONIONPOST_FLOOD_MESSAGES": "100000", "ONIONPOST_LOG_LEVEL": "INFO"}
    services = [ServiceProcess(command, env, directory / f"{command}.log").start()
                for command in ("guardian", "notifier")]
    ingest = IngestProcess(mailbox, DOMAIN, {
        **env, "ONIONPOST_TLS": "off", "ONIONPOST_CIRCUIT_MAX_SESSIONS": "100",
        "ONIONPOST_CIRCUIT_MESSAGES_PER_MINUTE": "1000000"}).start()
    return Rig(directory, redis_server, ntfy, ingest, services)


@dataclass
class Reaction:
    guardian: float  # 250 of the filling message -> pause record in Redis
    total: float  # 250 of the filling message -> 421 at the greeting
    stored: int


def measure_reaction(rig: Rig) -> Reaction:
    rig.empty_and_accepting()
    probe = Probe(rig.ingest.port, rig.redis_server.url)
    prober = threading.Thread(target=probe.run, daemon=True)
    prober.start()
    flooder = Flooder(rig.ingest.port, f"owner@{DOMAIN}", SESSIONS, RETRY_PAUSE)
    flood = threading.Thread(target=flooder.run, kwargs={"until": time.monotonic() + 10})
    flood.start()
    prober.join(10)
    flooder.stop()
    probe.stop.set()
    flood.join()
    prober.join()
    times = sorted(t for t, _ in flooder.result.accepted)
    filled = times[-1]
    if probe.paused_at is None or probe.refused_at is None:
        raise RuntimeError("the flood was not stopped within 10 s")
    return Reaction(probe.paused_at - filled, probe.refused_at - filled, len(times))


@dataclass
class Flood:
    samples: list[tuple[float, int, bool]]  # (seconds from start, stored, paused)
    accepted: int
    max_stored: int
    drained_at: float
    rate: float  # messages accepted per second, first 250 to the filling one


def measure_flood(rig: Rig) -> Flood:
    rig.empty_and_accepting()
    start = time.monotonic()
    samples: list[tuple[float, int, bool]] = []
    done = threading.Event()
    drained_at = FLOOD_SECONDS / 2

    def sample() -> None:
        drained = False
        while not done.is_set():
            now = time.monotonic() - start
            if not drained and now >= drained_at:
                drain(rig.mailbox)  # the owner fetches the mail halfway through
                drained = True
            samples.append((now, maildir.scan(rig.mailbox).messages, rig.paused()))
            time.sleep(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = Flooder(rig.ingest.port, f"owner@{DOMAIN}", SESSIONS, RETRY_PAUSE).run(
        until=start + FLOOD_SECONDS)
    done.set()
    sampler.join()
    first_pause = next((t for t, _, paused in samples if paused), FLOOD_SECONDS)
    before = sorted(t for t, _ in result.accepted if t - start <= first_pause)
    rate = (len(before) - 1) / (before[-1] - before[0]) if len(before) > 1 else 0.0
    return Flood(samples, len(result.accepted), max(n for _, n, _ in samples), drained_at,
                 rate)


def plot(flood: Flood) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = [t for t, _, _ in flood.samples]
    stored = [n for _, n, _ in flood.samples]
    figure, axes = plt.subplots(figsize=(8, 3.6), dpi=110)
    axes.step(seconds, stored, where="post", label="messages in the mailbox")
    axes.axhline(LIMIT, color="tab:red", linestyle="--", label=f"limit ({LIMIT})")
    axes.axhline(LIMIT * 0.8, color="tab:green", linestyle=":", label="resume mark (80%)")
    axes.fill_between(seconds, 0, LIMIT * 1.1, where=[p for _, _, p in flood.samples],
                      step="post", color="tab:orange", alpha=0.2, label="ingest paused")
    axes.axvline(flood.drained_at, color="grey", linewidth=0.8)
    axes.annotate("owner fetches mail", (flood.drained_at, LIMIT * 0.45), xytext=(6, 0),
                  textcoords="offset points", fontsize=8, color="grey")
    axes.set_xlabel("seconds since the flood started (20 sessions)")
    axes.set_ylabel("stored messages")
    axes.set_ylim(0, LIMIT * 1.1)
    axes.set_xlim(0, FLOOD_SECONDS)
    axes.legend(loc="lower right", fontsize=8)
    axes.set_title(f"A {FLOOD_SECONDS:.0f}-second flood against a mailbox limited to {LIMIT} "
                   "messages", fontsize=10)
    figure.tight_layout()
    PLOT.parent.mkdir(exist_ok=True)
    figure.savefig(PLOT)
    plt.close(figure)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-guardian-") as tmp:
        rig = start_rig(Path(tmp))
        try:
            reactions = [measure_reaction(rig) for _ in range(ROUNDS)]
            flood = measure_flood(rig)
        finally:
            rig.stop()
    plot(flood)
    guardian_ms = [r.guardian * 1000 for r in reactions]
    total_ms = [r.total * 1000 for r in reactions]
    print(f"reaction, {ROUNDS} floods of {SESSIONS} sessions at a {LIMIT}-message limit:")
    print(f"{'':32} {'median':>9} {'max':>9}")
    print(f"{'250 -> pause record (guardian)':32} {statistics.median(guardian_ms):8.0f}ms "
          f"{max(guardian_ms):8.0f}ms")
    print(f"{'250 -> 421 at greeting (total)':32} {statistics.median(total_ms):8.0f}ms "
          f"{max(total_ms):8.0f}ms")
    print(f"{'stored per round':32} {min(r.stored for r in reactions):>9} "
          f"{max(r.stored for r in reactions):>9}")
    print(f"\n{FLOOD_SECONDS:.0f}-second flood (owner fetches at {flood.drained_at:.0f} s):")
    print(f"  accepted {flood.accepted}, most stored at once {flood.max_stored}, "
          f"overshoot {max(0, flood.max_stored - LIMIT)}")
    print(f"  flood rate before the pause {flood.rate:.0f} msg/s; seed (cron, "
          f"{SEED_CRON_SECONDS} s): reaction up to {SEED_CRON_SECONDS} s, overshoot up to "
          f"{flood.rate * SEED_CRON_SECONDS:.0f} messages")
    print(f"  plot: {PLOT.relative_to(PLOT.parents[1])}")


if __name__ == "__main__":
    main()
