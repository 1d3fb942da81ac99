"""The README's first lines are the commands CI and the fresh-Debian test run, and the only
`./run` commands the README tells anyone to type."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.readme import README, first_commands

CI = README.parent / ".ci" / "run"


def test_the_first_lines_are_the_start_test_and_laptop_commands() -> None:
    assert first_commands() == {"up": "./run up", "test": "make test",
                                "laptop": "./run laptop"}


def test_ci_runs_exactly_the_readme_test_command() -> None:
    commands = [line for line in CI.read_text().splitlines()
                if line and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert commands == [first_commands()["test"]]


def test_every_run_command_in_the_readme_is_one_of_the_first_lines() -> None:
    typed = set(re.findall(r"^(\./run \w+)", README.read_text(), re.MULTILINE))
    assert typed <= set(first_commands().values()) | {"./run test"}
    assert Path(README.parent / "run").stat().st_mode & 0o111
