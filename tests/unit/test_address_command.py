"""`onionpost address`: the mail onion alone (scripts read it), `--owner`, `--all`."""

from __future__ import annotations

from pathlib import Path

import pytest

from onionpost.exits import EX_UNAVAILABLE, CommandError
from onionpost.settings import Settings
from onionpost.tor.control import address_main

MAIL = "lux6itkmc2qhczbli6jwke4cmcemn7dldwhidea3nqfucfdrsjkvldyd.onion"
OWNER = "aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyp3kead.onion"


def settings(owner_dir: Path) -> Settings:
    return Settings(domain=MAIL, owner_onion_dir=owner_dir)


def test_plain_address_is_the_mail_onion_alone(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hostname").write_text(f"{OWNER}\n")
    assert address_main([], settings(tmp_path)) == 0
    assert capsys.readouterr().out == f"{MAIL}\n"


def test_owner_and_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hostname").write_text(f"{OWNER}\n")
    assert address_main(["--owner"], settings(tmp_path)) == 0
    assert capsys.readouterr().out == f"{OWNER}\n"
    assert address_main(["--all"], settings(tmp_path)) == 0
    assert [line.split()[:2] for line in capsys.readouterr().out.splitlines()] == [
        ["mail", MAIL], ["owner", OWNER]]


@pytest.mark.parametrize("content", [None, "", "not-an-onion.onion\n"])
def test_owner_onion_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             content: str | None) -> None:
    if content is not None:
        (tmp_path / "hostname").write_text(content)
    with pytest.raises(CommandError) as unknown:
        address_main(["--owner"], settings(tmp_path))
    assert unknown.value.code == EX_UNAVAILABLE
    assert "hostname is unreadable" in unknown.value.message
    assert capsys.readouterr().out == ""
    assert address_main(["--all"], settings(tmp_path)) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("owner  unknown")
