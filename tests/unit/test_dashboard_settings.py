"""The dashboard's pydantic-free settings agree with Settings (defaults, the Redis password
from the secrets directory, refusals), and `onionpost dashboard` loads no pydantic."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.settings_outcome import outcome

from onionpost import dashboard, setting_values
from onionpost.dashboard import DashboardSettings
from onionpost.settings import Settings, load_settings


def test_the_defaults_are_those_of_settings() -> None:
    for field in dataclasses.fields(DashboardSettings):
        assert field.default == Settings.model_fields[field.name].default, field.name


@pytest.mark.parametrize(("variables", "password"), [
    ({}, None),
    ({"ONIONPOST_REDIS_URL": "redis://redis:6379/0"}, "s3cret/+ ä"),
    ({"onionpost_redis_url": "redis://u:old@redis:6379/1"}, "new"),
    ({"ONIONPOST_LOG_LEVEL": "DEBUG"}, "x"),
    ({"ONIONPOST_LOG_LEVEL": "debug"}, None),
    ({"ONIONPOST_REDIS_URL": ""}, "x"),
])
def test_both_readers_agree(variables: dict[str, str], password: str | None, tmp_path: Path,
                            clean_environment: pytest.MonkeyPatch) -> None:
    if password is not None:
        (tmp_path / setting_values.REDIS_PASSWORD_FILE).write_text(password + "\n")
        clean_environment.setenv("ONIONPOST_SECRETS_DIR", str(tmp_path))
    for name, value in variables.items():
        clean_environment.setenv(name, value)
    full, light = outcome(load_settings), outcome(dashboard.load_settings)
    if isinstance(full, Settings):
        assert isinstance(light, DashboardSettings), light
        assert [getattr(light, f.name) for f in dataclasses.fields(light)] == [
            getattr(full, f.name) for f in dataclasses.fields(light)]
    else:
        assert light == full


def test_a_missing_password_file_is_refused_by_both(
        tmp_path: Path, clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("ONIONPOST_SECRETS_DIR", str(tmp_path))
    assert outcome(dashboard.load_settings) == outcome(load_settings) == (
        "refused", "ONIONPOST_SECRETS_DIR")


def test_the_dashboard_command_loads_no_pydantic() -> None:
    code = ("import sys\nfrom onionpost import cli\nfunction, load = cli._resolve('dashboard')\n"
            "load()\nprint(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    assert "onionpost.dashboard" in loaded
    assert [name for name in ("pydantic", "pydantic_settings", "onionpost.settings")
            if name in loaded] == []
