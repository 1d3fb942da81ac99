"""cli.run prints a CommandError's message on one stderr line and exits with its code; the
commands' error exits that no other test reaches."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.net import free_port

from onionpost import cli
from onionpost.exits import EX_TEMPFAIL, EX_UNAVAILABLE, CommandError
from onionpost.settings import Settings


def _failing(argv: list[str], settings: object) -> int:
    raise CommandError(EX_TEMPFAIL, "tor is not running at 127.0.0.1:9050")


def test_a_command_error_becomes_its_exit_code_and_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli.COMMANDS, "fails", (f"{__name__}:_failing", "test"))
    assert cli.run("fails", []) == EX_TEMPFAIL
    assert capsys.readouterr().err == "onionpost fails: tor is not running at 127.0.0.1:9050\n"


@pytest.mark.parametrize("command", ["pause", "resume"])
def test_pause_and_resume_without_redis_exit_69_with_one_line(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", maildir=tmp_path)
    assert cli.invoke(command, [], settings) == EX_UNAVAILABLE
    assert capsys.readouterr().err == f"onionpost {command}: Redis unreachable (ConnectionError)\n"


def test_address_without_tor_exits_69_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(onion_hostname_file=tmp_path / "hostname",
                        tor_control=f"127.0.0.1:{free_port()}")
    assert cli.invoke("address", [], settings) == EX_UNAVAILABLE
    assert capsys.readouterr().err == (
        f"onionpost address: unknown: {tmp_path / 'hostname'} is unreadable and tor reports"
        " no single onion service\n")
