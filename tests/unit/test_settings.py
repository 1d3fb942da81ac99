"""Settings: sizes, clear one-line errors, and .env.example covering every setting."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from onionpost.settings import ConfigError, Settings, load_settings, parse_size

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "expected"), [
    ("300MB", 300_000_000), ("10 MiB", 10 * 2**20), ("1024", 1024), (512, 512),
    ("1.5GB", 1_500_000_000), ("7k", 7000),
])
def test_sizes(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "12 parsecs", "-5", "1e9"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONIONPOST_MAX_BYTES", "lots")
    with pytest.raises(ConfigError, match=r"^ONIONPOST_MAX_BYTES: .*lots"):
        load_settings()


def test_bad_value_stops_the_program_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "onionpost", "ingest"], capture_output=True, text=True,
        env={"ONIONPOST_INGEST_LISTEN": "localhost:not-a-port", "PATH": "/usr/bin:/bin"},
        timeout=30)
    assert result.returncode == 78
    assert result.stderr.count("\n") == 1
    assert "ONIONPOST_INGEST_LISTEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_env_example_lists_every_setting_with_its_default() -> None:
    text = (REPO / ".env.example").read_text()
    listed = dict(re.findall(r"^(ONIONPOST_\w+)=(.*)$", text, re.MULTILINE))
    fields = {str(field.validation_alias or f"ONIONPOST_{name.upper()}"): name
              for name, field in Settings.model_fields.items()}
    assert set(listed) == set(fields)
    example = Settings(**{name: value for key, name in fields.items()
                          if (value := listed[key]) != ""})
    assert example == Settings()


def test_domain_from_the_tor_hostname_file(tmp_path: Path) -> None:
    hostname = tmp_path / "hostname"
    hostname.write_text("ABCDEF.onion\n")
    assert Settings(onion_hostname_file=hostname).onion_domain() == "abcdef.onion"
    with pytest.raises(ConfigError, match="ONIONPOST_DOMAIN is empty"):
        Settings(onion_hostname_file=tmp_path / "missing").onion_domain()


def test_session_lifetime_defaults_to_the_data_timeout_and_five_minutes() -> None:
    assert Settings().lifetime() == 600 + 300
    assert Settings(data_timeout=60).lifetime() == 360
    assert Settings(data_timeout=60, session_lifetime=30).lifetime() == 30


def test_redis_password_from_the_secrets_dir(tmp_path: Path) -> None:
    (tmp_path / "redis-password").write_text("s3cret/+:@\n")
    settings = Settings(redis_url="redis://redis:6379/0", secrets_dir=tmp_path)
    assert settings.redis_url == "redis://:s3cret%2F%2B%3A%40@redis:6379/0"
    again = Settings(redis_url="redis://:old@redis:6379/0", secrets_dir=tmp_path)
    assert again.redis_url == settings.redis_url


def test_missing_redis_password_is_one_clear_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONIONPOST_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("ONIONPOST_NTFY_PASSWORD", "never-shown")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith(f"ONIONPOST_SECRETS_DIR: {tmp_path}/redis-password is unreadable")
    assert "never-shown" not in message and "\n" not in message


@pytest.mark.parametrize("value", ["me@x.onion", "me", ""])
def test_onionpost_from_takes_an_address_or_a_name(value: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONIONPOST_FROM", value)
    assert load_settings().from_address == value


@pytest.mark.parametrize("value", ["me@x.onion\nBcc: spy@y.onion", "Me <me@x.onion>",
                                   "a@b@c", "me@x.onion, you@y.onion", "me @x.onion"])
def test_onionpost_from_refuses_what_would_break_the_from_header(
        value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONIONPOST_FROM", value)
    with pytest.raises(ConfigError, match=r"^ONIONPOST_FROM: expected one address"):
        load_settings()
