"""`make up-offline`: the stack on a machine with no image registry (this CI), for trying it.

The product's `make up` (onionpost.stack) stops with one line when no registry answers.
Here the base images are built locally as stand-ins (standin_images.sh) and
tests/compose/offline.yaml swaps ntfy for its test double; the engine is the product's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from onionpost.stack import DockerEngine, StackError, say
from tests.compose.stack import HERE, ROOT, build_standins


def main() -> int:
    try:
        DockerEngine(Path("/var/tmp/onionpost-up")).ensure()  # a dockerd we start keeps running
    except StackError as error:
        say(str(error))
        return 69
    build_standins()
    files = ["-f", str(ROOT / "compose.yaml"), "-f", str(HERE / "offline.yaml")]
    command = ["docker", "compose", *files, "up", "-d", "--build", "--wait"]
    return subprocess.run(command, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
