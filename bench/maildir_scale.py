"""A large mailbox: what 100,000 stored messages cost ingest at rest and the guardian per event.

Real processes: redis-server, `onionpost ingest` (one process), `onionpost guardian`, over a
Maildir holding BENCH_MESSAGES messages (empty files whose names say 100 kB each with ,S=:
a 10 GB box as every scan sees it, made in seconds; limits raised so nothing pauses).

- Idle CPU: ingest's and the guardian's CPU time over BENCH_IDLE_SECONDS with no mail at
  all, from /proc/PID/stat (utime + stime), in % of one core.
- Guardian reaction: one message sent over SMTP, then a `messages_stored` job for it put
  on the events queue; the job's run time as rq records it (started -> ended), and from
  enqueue to done. BENCH_EVENTS rounds.

Both measured for this tree and for BENCH_BASELINE (a git ref, default main: its services/
exported with git archive and put first on the PYTHONPATH of the processes), in the same
run. Goals (issue 16): idle ingest <= 0.5 % of a core, a reaction <= 5 ms.
"""

from __future__ import annotations

import os
import smtplib
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from tests.support.guardian_rig import ServiceProcess
from tests.support.servers import IngestProcess, RedisServer

from onionpost import maildir
from onionpost.events import EVENTS_QUEUE, MESSAGES_STORED_JOB, queue

DOMAIN = "bench.onion"
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "100000"))
IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", "30"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "20"))
BASELINE = os.environ.get("BENCH_BASELINE", "main")
CLAIMED_SIZE = 100_000  # bytes each name claims (,S=): the box is 10 GB to a scan
TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parents[1]


def fill(box: Path, count: int) -> None:
    """count messages in cur/ (read, as a mailbox that is never fetched), a day old."""
    maildir.ensure(box)
    first = int(time.time()) - 86_400 - count
    for number in range(count):
        name = f"{first + number}.M{number}R{number:012X}.{maildir.HOST_LABEL},S={CLAIMED_SIZE}"
        os.close(os.open(box / "cur" / f"{name}:2,S", os.O_WRONLY | os.O_CREAT, 0o600))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def baseline_code(directory: Path) -> Path | None:
    """BENCH_BASELINE's services/ exported here, or None when git cannot."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE, "services"],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        return None
    directory.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True)
    return directory / "services"


@dataclass
class Figures:
    ingest_idle: float  # % of a core
    guardian_idle: float
    job_ms: list[float]
    round_trip_ms: list[float]


def measure(directory: Path, code: Path | None) -> Figures:
    box = directory / "mail" / "inbox"
    fill(box, MESSAGES)
    redis_server = RedisServer(directory / "redis").start()
    env = {"ONIONPOST_REDIS_URL": redis_server.url, "ONIONPOST_MAILDIR": str(box),
           "ONIONPOST_MAX_MESSAGES": str(MESSAGES * 10),
           "ONIONPOST_MAX_BYTES": str(MESSAGES * CLAIMED_SIZE * 10),
           "ONIONPOST_NOTIFY_NEW_MAIL": "off", "ONIONPOST_FLOOD_MESSAGES": "1000000",
           "ONIONPOST_CIRCUIT_MESSAGES_PER_MINUTE": "100000", "ONIONPOST_TLS": "off",
           "ONIONPOST_LOG_LEVEL": "WARNING"}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    guardian = ServiceProcess("guardian", {**env, "ONIONPOST_LOG_LEVEL": "INFO"},
                              directory / "guardian.log").start()
    ingest = IngestProcess(box, DOMAIN, {**env, "ONIONPOST_LOG_LEVEL": "INFO"}).start()
    try:
        time.sleep(3)  # start-up scans done
        assert ingest.process is not None and guardian.process is not None
        pids = ingest.process.pid, guardian.process.pid
        before = [cpu_seconds(pid) for pid in pids]
        time.sleep(IDLE_SECONDS)
        idle = [(cpu_seconds(pid) - start) / IDLE_SECONDS * 100
                for pid, start in zip(pids, before, strict=True)]
        job_ms, round_trip_ms = reactions(ingest.port, redis_server.url)
    finally:
        ingest.stop()
        guardian.stop()
        redis_server.stop()
    return Figures(idle[0], idle[1], job_ms, round_trip_ms)


def reactions(port: int, redis_url: str) -> tuple[list[float], list[float]]:
    connection = redis.Redis.from_url(redis_url)
    events = queue(EVENTS_QUEUE, connection)
    job_ms, round_trip_ms = [], []
    for number in range(EVENTS):
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail("a@example.org", [f"owner@{DOMAIN}"],
                            f"Subject: {number}\r\n\r\nhello\r\n".encode())
        time.sleep(0.2)  # ingest's own event for it is handled
        began = time.monotonic()
        job = events.enqueue(MESSAGES_STORED_JOB, [{"file": f"bench-{number}", "size": 1}],
                             result_ttl=600)
        while job.get_status(refresh=True) not in ("finished", "failed"):
            time.sleep(0.001)
        round_trip_ms.append((time.monotonic() - began) * 1000)
        job.refresh()
        assert job.started_at and job.ended_at, job.get_status()
        job_ms.append((job.ended_at - job.started_at).total_seconds() * 1000)
        time.sleep(0.1)
    return job_ms, round_trip_ms


def main() -> None:
    rows: list[tuple[str, Figures]] = []
    with tempfile.TemporaryDirectory(prefix="bench-maildir-") as tmp:
        code = baseline_code(Path(tmp) / "baseline")
        for label, path in ((BASELINE, code), ("this tree", None)):
            if label == BASELINE and path is None:
                print(f"(no baseline: git archive {BASELINE} failed)")
                continue
            directory = Path(tmp) / label.replace("/", "-").replace(" ", "-")
            rows.append((label, measure(directory, path)))
    print(f"{MESSAGES} messages stored ({MESSAGES * CLAIMED_SIZE / 1e9:.0f} GB by their "
          f"names); idle over {IDLE_SECONDS:.0f} s; {EVENTS} events:")
    print(f"{'code':12} {'ingest idle':>12} {'guardian idle':>14} {'event job':>18} "
          f"{'enqueue->done':>18}")
    print(f"{'':12} {'% of a core':>12} {'% of a core':>14} {'median / max ms':>18} "
          f"{'median / max ms':>18}")
    for label, f in rows:
        print(f"{label:12} {f.ingest_idle:12.2f} {f.guardian_idle:14.2f} "
              f"{statistics.median(f.job_ms):8.1f} /{max(f.job_ms):7.1f} "
              f"{statistics.median(f.round_trip_ms):8.1f} /{max(f.round_trip_ms):7.1f}")
    if len(rows) == 2:
        old, new = rows[0][1], rows[1][1]
        print(f"ratio this tree / {BASELINE}: ingest idle "
              f"{new.ingest_idle / max(old.ingest_idle, 1e-9):.3f}, event job "
              f"{statistics.median(new.job_ms) / statistics.median(old.job_ms):.3f}")


if __name__ == "__main__":
    main()
