"""The compose stack at rest: memory of every container (docker stats) and image sizes.

Brings up compose.yaml with tests/compose/override.yaml (the ntfy test double stands in for
ntfy, tor cannot reach the Tor network here), waits for it to settle, samples `docker stats`
a few times and prints the median per container; removes the project afterwards."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from tempfile import mkdtemp

from tests.compose.stack import Stack, engine_with_base_images

from onionpost.stack import run

SETTLE_SECONDS = 30
SAMPLES = 3
IMAGES = ["onionpost/services:latest", "onionpost/dashboard:latest", "onionpost/owner:latest",
          "onionpost/tor:latest", "python:3.11-slim-bookworm", "debian:bookworm-slim",
          "redis:7-bookworm"]
MIB = 2**20


def image_size(tag: str) -> int:
    return int(run(["docker", "image", "inspect", "--format", "{{.Size}}", tag]).stdout)


def measure(stack: Stack) -> dict[str, list[int]]:
    samples: dict[str, list[int]] = {}
    for _ in range(SAMPLES):
        for name, used in stack.memory().items():
            service = name.removeprefix(stack.project + "-")
            samples.setdefault(service, []).append(used)
        time.sleep(5)
    return samples


def main() -> None:
    engine = engine_with_base_images(Path(mkdtemp(prefix="bench-docker-")))
    stack = Stack(HEALTHCHECK_INTERVAL="30s")  # the shipped interval: no probe in the samples
    try:
        stack.build()
        started = time.monotonic()
        stack.up()
        up_seconds = time.monotonic() - started
        time.sleep(SETTLE_SECONDS)
        samples = measure(stack)
    finally:
        stack.compose("down", "--volumes", "--timeout", "5", check=False)
        engine.close()
    print(f"`up -d --wait` (images built): {up_seconds:.0f} s\n")
    print("| container | memory at rest (median of 3) |\n|---|---|")
    total = 0
    for service, values in sorted(samples.items()):
        median = int(statistics.median(values))
        total += median
        print(f"| {service} | {median / MIB:.1f} MiB |")
    print(f"| **total** | **{total / MIB:.1f} MiB** |\n")
    print("| image | size |\n|---|---|")
    for tag in IMAGES:
        print(f"| {tag} | {image_size(tag) / 1e6:.0f} MB |")


if __name__ == "__main__":
    main()
