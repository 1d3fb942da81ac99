"""Another revision's `services/` (BENCH_BASELINE=<git revision>), for benches that compare
it with this tree in the same run: put the returned directory first on PYTHONPATH."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.servers import REPO


def export(revision: str, into: Path) -> Path:
    """`git archive` of the revision's services/ into `into`; the directory to import from."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "services"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "services"
