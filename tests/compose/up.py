"""`make up`: start the stack, installing Docker and Compose v2 first when they are missing.

With an image registry (a VPS) this is `docker compose up -d --build --wait` on compose.yaml.
Without one (an offline sandbox) the base images are built locally as stand-ins
(standin_images.sh) and tests/compose/offline.yaml swaps ntfy for its test double.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.compose.stack import HERE, ROOT, DockerEngine, run

OFFLINE_NOTE = ("no image registry reachable: using local stand-in base images, the ntfy "
                "test double in place of ntfy, and no route to the public Tor network")


def registry_reachable() -> bool:
    return run(["timeout", "60", "docker", "pull", "--quiet", "debian:bookworm-slim"],
               timeout=90, check=False).returncode == 0


def main() -> int:
    workdir = Path("/var/tmp/onionpost-up")
    workdir.mkdir(parents=True, exist_ok=True)
    engine = DockerEngine(workdir)
    engine.ensure(standins=False)  # a dockerd we start keeps running: it serves the stack
    files = ["-f", str(ROOT / "compose.yaml")]
    if not registry_reachable():
        print(f"onionpost: {OFFLINE_NOTE}", file=sys.stderr)
        run(["bash", str(HERE / "standin_images.sh")], timeout=1800)
        files += ["-f", str(HERE / "offline.yaml")]
    command = ["docker", "compose", *files, "up", "-d", "--build", "--wait"]
    return subprocess.run(command, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
