"""The compose stack at rest: memory of every container (docker stats) and image sizes.

Brings up compose.yaml with tests/compose/override.yaml (the ntfy test double stands in for
ntfy, tor cannot reach the Tor network here), waits for it to settle, samples `docker stats`
a few times and prints the median per container; removes the project afterwards. Its images
get names of their own (onionpost-<project>/...): other work on the same engine builds
and runs onionpost/*:latest meanwhile."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path
from tempfile import mkdtemp

from tests.compose.stack import Stack, engine_with_base_images

from onionpost.stack import COMPOSE_TIMEOUT, run

SETTLE_SECONDS = 30
SAMPLES = 3
BASE_IMAGES = ["python:3.11-slim-bookworm", "debian:bookworm-slim", "redis:7-bookworm"]
MIB = 2**20


class OwnImages(Stack):
    """The stack with its built images renamed onionpost-<project>/NAME (a third compose
    file), so that no other build on this engine replaces them mid-run, nor they others."""

    def __init__(self, **variables: str) -> None:
        super().__init__(**variables)
        self.images_file = Path(mkdtemp(prefix="bench-images-")) / "images.json"
        self.images_file.write_text("{}")
        services = json.loads(self.compose("config", "--format", "json").stdout)["services"]
        self.own = {name: {"image": service["image"].replace("onionpost/",
                                                             f"{self.project}/", 1)}
                    for name, service in services.items()
                    if service.get("image", "").startswith("onionpost/")}
        self.images_file.write_text(json.dumps({"services": self.own}))

    def compose(self, *args: str, check: bool = True,
                timeout: float = COMPOSE_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return super().compose("-f", str(self.images_file), *args, check=check,
                               timeout=timeout)

    def image_tags(self) -> list[str]:
        return sorted({service["image"] for service in self.own.values()})

    def remove_images(self) -> None:
        run(["docker", "image", "rm", *self.image_tags()], check=False)


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
    stack = OwnImages(HEALTHCHECK_INTERVAL="30s")  # the shipped interval: no probe sampled
    try:
        stack.build()
        started = time.monotonic()
        stack.up()
        up_seconds = time.monotonic() - started
        time.sleep(SETTLE_SECONDS)
        samples = measure(stack)
    finally:
        stack.compose("down", "--volumes", "--timeout", "5", check=False)
        sizes = {tag: image_size(tag) for tag in stack.image_tags() + BASE_IMAGES}
        stack.remove_images()
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
    for tag, size in sizes.items():
        print(f"| {tag} | {size / 1e6:.0f} MB |")


if __name__ == "__main__":
    main()
