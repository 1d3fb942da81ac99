"""Run every benchmark module in turn (`make bench`); `python -m bench NAME` runs one."""

from __future__ import annotations

import importlib
import sys

MODULES = [
    "bench.ingest_throughput",
    "bench.seal_stall",
    "bench.hostile",
    "bench.guardian_reaction",
    "bench.maildir_scale",
    "bench.tor_latency",
    "bench.sendmail_latency",
    "bench.sendmail_startup",
    "bench.round_trips",
    "bench.fetch_speed",
    "bench.compose_stack",
    "bench.service_memory",
    "bench.watch",
]


def main() -> None:
    chosen = [m for m in MODULES if not sys.argv[1:] or m.rsplit(".", 1)[1] in sys.argv[1:]]
    for name in chosen:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            print(f"(skipped {name}: not written yet)")
            continue
        print(f"\n=== {name} ===", flush=True)
        module.main()


main()
