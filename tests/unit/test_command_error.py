"""cli.run prints a CommandError's message on one stderr line and exits with its code."""

from __future__ import annotations

import pytest

from onionpost import cli
from onionpost.exits import EX_TEMPFAIL, CommandError


def _failing(argv: list[str], settings: object) -> int:
    raise CommandError(EX_TEMPFAIL, "tor is not running at 127.0.0.1:9050")


def test_a_command_error_becomes_its_exit_code_and_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli.COMMANDS, "fails", (f"{__name__}:_failing", "test"))
    assert cli.run("fails", []) == EX_TEMPFAIL
    assert capsys.readouterr().err == "onionpost fails: tor is not running at 127.0.0.1:9050\n"
