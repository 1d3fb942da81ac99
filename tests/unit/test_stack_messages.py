"""What `./run up` says when a step fails: dockerd's own reason, in one line."""

from __future__ import annotations

import pytest

from onionpost.stack import daemon_failure, last_line, main

DOCKERD_LOG = """\
time="2026-11-30T15:00:00Z" level=info msg="Starting up"
time="2026-11-30T15:00:01Z" level=info msg="Loading containers: start."
failed to start daemon: Error initializing network controller: iptables failed
time="2026-11-30T15:00:02Z" level=info msg="stopping event stream following graceful shutdown"
(exit status 4)
"""


def test_the_reason_is_dockerds_failure_line_not_its_last_line() -> None:
    assert daemon_failure(DOCKERD_LOG) == (
        "failed to start daemon: Error initializing network controller: iptables failed")


def test_without_a_failure_line_the_last_line_is_the_reason() -> None:
    assert daemon_failure("level=info msg=a\n  killed  \n\n") == "killed"
    assert last_line("") == "no output"


def test_an_unknown_command_gets_the_usage_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["down"]) == 64
    assert capsys.readouterr().err == "onionpost: usage: python -m onionpost.stack up\n"
