"""The services' settings (checked by Settings in a child process) are Settings' own: every
field, the methods, the same refusal; and the service process never loads pydantic."""

from __future__ import annotations

from pathlib import Path

import pytest

from onionpost import service_settings
from onionpost.settings import ConfigError, Settings, load_settings


@pytest.mark.parametrize("variables", [
    {},
    {"ONIONPOST_MAX_BYTES": "2MB", "ONIONPOST_SESSION_LIFETIME": "30",
     "ONIONPOST_DOMAIN": "Example.ONION.", "ONIONPOST_SEND_RETRY_DELAYS": "1, 2",
     "ONIONPOST_TLS_CERT": "/tmp/cert.pem", "ONIONPOST_FROM": "me"},
])
def test_every_field_and_method_is_that_of_settings(
        clean_environment: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    for name, value in variables.items():
        clean_environment.setenv(name, value)
    checked, light = load_settings(), service_settings.load_settings()
    assert isinstance(light, service_settings.SettingValues)
    for field in Settings.model_fields:
        assert getattr(light, field) == getattr(checked, field), field
        assert type(getattr(light, field)) is type(getattr(checked, field)), field
    assert light.lifetime() == checked.lifetime()
    assert light.hostport("[::1]:25") == checked.hostport("[::1]:25")
    if checked.domain:
        assert light.onion_domain() == checked.onion_domain()


def test_the_redis_password_comes_from_the_secrets_dir(
        clean_environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "redis-password").write_text("s3cret\n")
    clean_environment.setenv("ONIONPOST_SECRETS_DIR", str(tmp_path))
    assert service_settings.load_settings().redis_url == "redis://:s3cret@127.0.0.1:6379/0"


@pytest.mark.parametrize(("name", "value"), [
    ("ONIONPOST_MAX_BYTES", "lots"), ("ONIONPOST_TOR_SOCKS", "nowhere"),
    ("ONIONPOST_SECRETS_DIR", "/nonexistent-onionpost-secrets")])
def test_a_bad_value_is_refused_with_settings_words(
        clean_environment: pytest.MonkeyPatch, name: str, value: str) -> None:
    clean_environment.setenv(name, value)
    with pytest.raises(ConfigError) as checked:
        load_settings()
    with pytest.raises(ConfigError) as light:
        service_settings.load_settings()
    assert str(light.value) == str(checked.value)
    assert str(light.value).startswith(name)
