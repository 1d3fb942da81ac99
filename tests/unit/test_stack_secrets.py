"""The stack's generated secrets: made once, kept after, never world-readable."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from onionpost import stack_secrets
from onionpost.settings import ConfigError, Settings


def test_first_start_makes_every_secret_readable_by_owner_and_group_only(
        tmp_path: Path) -> None:
    made = stack_secrets.create(tmp_path)
    assert sorted(made) == ["dashboard-password", "redis-password", "redis.conf"]
    for name in made:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o440
    password = stack_secrets.read(tmp_path, "redis-password")
    assert len(password) >= 40
    assert (tmp_path / "redis.conf").read_text() == f"requirepass {password}\n"
    assert stack_secrets.read(tmp_path, "dashboard-password") != password
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(made)  # no temporary left


def test_later_starts_keep_the_secrets(tmp_path: Path) -> None:
    stack_secrets.create(tmp_path)
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert stack_secrets.create(tmp_path) == []
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before


def test_a_lost_redis_conf_is_made_again_from_the_kept_password(tmp_path: Path) -> None:
    stack_secrets.create(tmp_path)
    password = stack_secrets.read(tmp_path, "redis-password")
    (tmp_path / "redis.conf").unlink()
    assert stack_secrets.create(tmp_path) == ["redis.conf"]
    assert (tmp_path / "redis.conf").read_text() == f"requirepass {password}\n"


def test_show_prints_the_login_and_create_prints_no_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert stack_secrets.main(["--create", str(tmp_path)], Settings()) == 0
    created = capsys.readouterr().out
    assert stack_secrets.main([], Settings(secrets_dir=tmp_path)) == 0
    shown = capsys.readouterr().out
    for name in ("dashboard-password", "redis-password"):
        secret = stack_secrets.read(tmp_path, name)
        assert secret in shown and secret not in created
    assert "user owner" in shown


def test_show_without_secrets_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="ONIONPOST_SECRETS_DIR is empty"):
        stack_secrets.main([], Settings())
