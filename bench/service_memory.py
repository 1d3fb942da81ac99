"""Memory of each Python service at rest, as processes on this machine (no Docker needed).

Starts a real redis-server, then `onionpost ingest`, `guardian`, `notifier` and `watch`
(tor, ntfy: closed ports, as in a stack whose tor is still starting), lets them idle
SETTLE_SECONDS, then sums over each service's process tree: RSS, PSS, and PSS of anonymous
memory (what a container is charged for: shared libraries are page cache there, and pages
a fork shares are counted once). With BENCH_BASELINE=<git revision> the same services of
that revision run too, in the same run (its `services/` from `git archive`, on PYTHONPATH).
Then, in one fresh interpreter, the anonymous memory each import adds, in IMPORTS order
(each row: what that import brings beyond the rows above it).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.net import free_port
from tests.support.servers import RedisServer

from bench.baseline import export

SERVICES = ["ingest", "guardian", "notifier", "watch"]
SETTLE_SECONDS = float(os.environ.get("BENCH_SETTLE", "20"))
SAMPLES = 3
IMPORTS = ["logging", "ssl", "asyncio", "email.message", "redis", "rq", "pydantic",
           "pydantic_settings", "onionpost.settings", "onionpost.guardian.command", "httpx",
           "onionpost.notifier.command", "aiosmtpd.smtp", "onionpost.ingest.command",
           "stem.control", "prometheus_client", "onionpost.watch.command"]
_IMPORT_STEPS = """
import importlib, sys
def anon():
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Pss_Anon"):
            return int(line.split()[1])
print("interpreter", anon())
for name in sys.argv[1:]:
    before = anon()
    importlib.import_module(name)
    print(name, anon() - before)
"""
DOMAIN = "bench4idleaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.onion"


def tree(root: int) -> list[int]:
    """root and all its descendants (the rq worker's forked helpers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1]
                                               .split()[1])
            except (OSError, IndexError):
                continue
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def memory(pids: list[int]) -> dict[str, int]:
    """kB summed over the processes: Rss, Pss, Pss_Anon (from smaps_rollup)."""
    total = {"Rss": 0, "Pss": 0, "Pss_Anon": 0}
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in total:
                total[key] += int(value.split()[0])
    return total


def environment(base: Path, redis_url: str, code: Path | None) -> dict[str, str]:
    env = {**os.environ, "ONIONPOST_REDIS_URL": redis_url, "ONIONPOST_DOMAIN": DOMAIN,
           "ONIONPOST_MAILDIR": str(base / "mail" / "inbox"),
           "ONIONPOST_INGEST_LISTEN": f"127.0.0.1:{free_port()}",
           "ONIONPOST_TOR_CONTROL": f"127.0.0.1:{free_port()}",
           "ONIONPOST_TOR_SOCKS": f"127.0.0.1:{free_port()}",
           "ONIONPOST_NTFY_URL": f"http://127.0.0.1:{free_port()}",
           "ONIONPOST_WATCH_METRICS_LISTEN": f"127.0.0.1:{free_port()}"}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    return env


def start(variant: str, base: Path, redis_url: str,
          code: Path | None) -> dict[str, subprocess.Popen[bytes]]:
    env = environment(base / variant, redis_url, code)
    (base / variant / "mail" / "inbox").mkdir(parents=True)
    return {service: subprocess.Popen([sys.executable, "-m", "onionpost", service], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for service in SERVICES}


def main() -> None:
    baseline = os.environ.get("BENCH_BASELINE")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        base = Path(tmp)
        redis = RedisServer(base / "redis").start()
        variants: dict[str, Path | None] = {"this tree": None}
        if baseline:
            variants[f"at {baseline}"] = export(baseline, base)
        running = {name: start(f"v{index}", base, redis.url, code)
                   for index, (name, code) in enumerate(variants.items())}
        try:
            time.sleep(SETTLE_SECONDS)
            samples: dict[tuple[str, str], list[dict[str, int]]] = {}
            for _ in range(SAMPLES):
                for variant, processes in running.items():
                    for service, process in processes.items():
                        if process.poll() is not None:
                            raise RuntimeError(f"{variant}: {service} exited "
                                               f"{process.returncode}")
                        samples.setdefault((variant, service), []).append(
                            memory(tree(process.pid)))
                time.sleep(2)
        finally:
            for processes in running.values():
                for process in processes.values():
                    process.terminate()
                for process in processes.values():
                    process.wait(15)
            redis.stop()
    report(samples, list(variants))
    report_imports()


def report_imports() -> None:
    out = subprocess.run([sys.executable, "-c", _IMPORT_STEPS, *IMPORTS], capture_output=True,
                         text=True, check=True).stdout
    print("\n| import (in this order) | anonymous memory added |\n|---|---|")
    for line in out.splitlines():
        name, kib = line.split()
        print(f"| {name} | {int(kib) / 1024:.1f} MiB |")


def report(samples: dict[tuple[str, str], list[dict[str, int]]], variants: list[str]) -> None:
    print(f"idle {SETTLE_SECONDS:.0f} s, median of {SAMPLES} samples, MiB, python "
          f"{sys.version.split()[0]}\n")
    print("| service | code | processes RSS | PSS | PSS anonymous |\n|---|---|---|---|---|")
    totals = {variant: {"Rss": 0.0, "Pss": 0.0, "Pss_Anon": 0.0} for variant in variants}
    for service in SERVICES:
        for variant in variants:
            values = samples[(variant, service)]
            row = {key: statistics.median(v[key] for v in values) / 1024
                   for key in ("Rss", "Pss", "Pss_Anon")}
            for key, value in row.items():
                totals[variant][key] += value
            print(f"| {service} | {variant} | {row['Rss']:.1f} | {row['Pss']:.1f} |"
                  f" {row['Pss_Anon']:.1f} |")
    for variant, total in totals.items():
        print(f"| **total** | {variant} | {total['Rss']:.1f} | {total['Pss']:.1f} |"
              f" **{total['Pss_Anon']:.1f}** |")


if __name__ == "__main__":
    main()
