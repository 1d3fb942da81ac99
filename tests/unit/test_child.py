"""run_in_child: a start-up step's result or exception comes back from the forked child, and
what the step imported stays in the child."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from onionpost.child import ChildError, run_in_child
from onionpost.exits import ConfigError


def test_the_result_comes_back_from_another_process() -> None:
    assert run_in_child(os.getpid) != os.getpid()


def test_an_exception_of_the_step_is_raised_here() -> None:
    def refuse() -> None:
        raise ConfigError("ONIONPOST_X: no")
    with pytest.raises(ConfigError, match="ONIONPOST_X: no"):
        run_in_child(refuse)


def test_a_child_that_sends_nothing_is_an_error() -> None:
    with pytest.raises(ChildError):
        run_in_child(lambda: os._exit(3))


def test_what_the_step_imports_stays_in_the_child() -> None:
    code = ("import sys\nfrom onionpost.child import run_in_child\n"
            "def step():\n    import email.mime.multipart\n    return 1\n"
            "assert run_in_child(step) == 1\nprint('email.mime.multipart' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"
