"""The README's start command where the Docker engine cannot start: one line, non-zero exit.

The docker CLI is the real one, pointed at a socket nobody serves (no engine answers); the
`dockerd` first on PATH fails at once as a real one does without the kernel features it
needs, so `./run up` has to start it, see it die and say so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.support.readme import README, first_commands

FAILING_DOCKERD = """#!/bin/sh
echo 'failed to start daemon: Error initializing network controller: iptables not found' >&2
exit 1
"""


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")
@pytest.mark.parametrize("make_level", [None, "1"])  # "1": run from inside make (make test)
def test_up_says_in_one_line_that_the_engine_did_not_start(tmp_path: Path,
                                                           make_level: str | None) -> None:
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "dockerd").write_text(FAILING_DOCKERD)
    (stubs / "dockerd").chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}",
           "DOCKER_HOST": f"unix://{tmp_path}/nobody.sock"}
    env.pop("MAKELEVEL", None)
    if make_level:
        env["MAKELEVEL"] = make_level  # make then names itself make[1] in its error lines
    done = subprocess.run(first_commands()["up"], shell=True, cwd=README.parent, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode != 0, output
    assert "Traceback" not in output, output
    assert not re.search(r"^make(\[\d+\])?:", output, re.MULTILINE), output
    last = output.splitlines()[-1]
    assert last.startswith("onionpost: the Docker engine did not start"), output
    assert "iptables not found" in last, output
