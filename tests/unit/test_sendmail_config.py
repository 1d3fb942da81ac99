"""sendmail's pydantic-free settings reader agrees with Settings, field by field: same
variables, same defaults, same values, the same inputs refused; and the sendmail command
really runs without pydantic, httpx, rq, redis, stem or asyncio."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.net import free_port
from tests.support.settings_outcome import outcome

from onionpost import onion, setting_values
from onionpost.exits import EX_TEMPFAIL
from onionpost.sender import config
from onionpost.sender.config import SendSettings
from onionpost.settings import Settings, load_settings

FIELDS = [field.name for field in dataclasses.fields(SendSettings)]
HEAVY = ("pydantic", "pydantic_settings", "httpx", "rq", "redis", "stem", "asyncio",
         "onionpost.settings")

# Per field, values Settings takes and values it refuses: the light reader must agree.
SAMPLES: dict[str, list[str]] = {
    "domain": [" Abc.ONION. ", "x.onion"],
    "onion_hostname_file": ["/tmp/h", "relative/h"],
    "from_address": ["me@x.onion", "anon", "a b", "<x@y>", "a@b@c", "x,y"],
    "tor_socks": ["127.0.0.1:9050", "[::1]:9050", ":9050", "tor:9050", "nowhere",
                  "host:99999", "host:-1"],
    "send_starttls": ["on", "off", "ON", "yes"],
    "send_timeout": ["5", " 7.5 ", "1e3", "0", "-1", "abc", "nan", "inf"],
    "send_retry_delays": ["10,40", "10 40", " 0 ", "1,,2", "1,-2", "soon", "inf"],
    "send_queue": ["on", "off", "true"],
    "outbox": ["~/outbox", "/var/o"],
    "address_book": ["~/c", "/etc/c"],
    "log_level": ["DEBUG", "ERROR", "debug", "TRACE"],
}


def test_every_field_is_a_settings_field_with_the_same_default() -> None:
    for name in FIELDS:
        assert SendSettings.__dataclass_fields__[name].default == Settings.model_fields[
            name].default, name
    assert set(SAMPLES) == set(FIELDS)


def test_the_variable_names_are_those_of_settings() -> None:
    for name in FIELDS:
        alias = Settings.model_fields[name].validation_alias
        assert setting_values.variable(name) == (alias or f"ONIONPOST_{name.upper()}")


@pytest.mark.parametrize(("field", "text"),
                         [(field, text) for field, texts in SAMPLES.items() for text in texts])
def test_both_readers_agree(field: str, text: str,
                            clean_environment: pytest.MonkeyPatch) -> None:
    variable = setting_values.variable(field)
    clean_environment.setenv(variable.lower() if field == "tor_socks" else variable, text)
    full, light = outcome(load_settings), outcome(config.load)
    if isinstance(full, Settings):
        assert isinstance(light, SendSettings), (text, light)
        assert getattr(light, field) == getattr(full, field)
    else:
        assert light == full == ("refused", variable)


def test_an_empty_value_means_the_default() -> None:
    assert config.load({"ONIONPOST_SEND_TIMEOUT": "", "ONIONPOST_FROM": ""}) == SendSettings()


def test_the_sendmail_command_imports_none_of_the_heavy_libraries(tmp_path: Path) -> None:
    """The whole command, up to a delivery attempt (tor is not running: exit 75)."""
    ours = onion.from_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    bob = onion.from_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    code = ("import sys\nfrom onionpost import cli\n"
            f"code = cli.run('sendmail', ['-oi', 'bob@{bob}'], prog='onionpost-sendmail')\n"
            "print(code, ' '.join(sorted(sys.modules)))")
    result = subprocess.run(
        [sys.executable, "-c", code], input=f"From: me@{ours}\n\nhi\n", capture_output=True,
        text=True, timeout=60,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "ONIONPOST_DOMAIN": ours,
             "ONIONPOST_TOR_SOCKS": f"127.0.0.1:{free_port()}",
             "ONIONPOST_SEND_RETRY_DELAYS": "0"})
    exit_code, modules = result.stdout.split(" ", 1)
    assert int(exit_code) == EX_TEMPFAIL, result.stderr
    assert "tor is not running" in result.stderr
    loaded = set(modules.split())
    assert "onionpost.sender.delivery" in loaded and "python_socks" in loaded
    assert [name for name in HEAVY if name in loaded] == []
