"""The values of ONIONPOST_* variables, read without pydantic: sizes, durations, delays,
host:port, a sender address, our onion domain, the Redis URL with the stack's password.
Settings validates with these, and so do the light readers of the commands that must start
fast or stay small (`read_environment`: sendmail, rq-dashboard)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from onionpost.exits import ConfigError

REDIS_PASSWORD_FILE = "redis-password"  # in secrets_dir
_UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6,
          "G": 10**9, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
# One address or a bare user name: no spaces, angle brackets or line breaks (it becomes a
# From header).
_SENDER_RE = re.compile(r"^[^\s<>@,;\"]+(@[^\s<>@,;\"]+)?$")


def parse_size(value: object) -> int:
    """'300MB', '10 MiB', '1024' or an int -> bytes (decimal units, as disks are sold)."""
    if isinstance(value, int):
        return value
    match = _SIZE_RE.match(str(value))
    unit = match.group(2).upper() if match else None
    if not match or unit not in _UNITS:
        raise ValueError(f"not a size: {value!r} (use e.g. 300MB, 10MiB or a byte count)")
    return int(float(match.group(1)) * _UNITS[unit])


def parse_delays(value: object) -> object:
    """'10,40' or '10 40' -> (10.0, 40.0); '' -> () (one try only)."""
    if isinstance(value, str):
        return tuple(float(part) for part in value.replace(",", " ").split())
    return value


def parse_duration(value: object) -> float:
    """'5d', '12h', '30m', '90s', '600' (seconds) or a number -> seconds."""
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION_RE.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 5d, 12h, 30m or seconds)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def split_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def check_sender(value: str) -> str:
    if value and not _SENDER_RE.match(value):
        raise ValueError("expected one address (user@<onion>) or a bare user name")
    return value


def normalise_domain(value: str) -> str:
    return value.strip().lower().rstrip(".")


def onion_domain(domain: str, hostname_file: Path) -> str:
    """Our domain: ONIONPOST_DOMAIN, else the first word of tor's hostname file."""
    if domain:
        return domain
    try:
        text = hostname_file.read_text().strip()
    except OSError as error:
        raise ConfigError(f"ONIONPOST_DOMAIN is empty and {hostname_file} is unreadable:"
                          f" {error.strerror}") from None
    return text.split()[0].lower() if text else ""


def with_password(url: str, password: str) -> str:
    """A Redis URL with this password (and no user name: Redis's `default` user)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f":{quote(password, safe='')}@{host}"))


def redis_url_with_secret(url: str, secrets_dir: Path | None) -> str:
    """The Redis URL with the password in secrets_dir (none: the URL as it is)."""
    if secrets_dir is None:
        return url
    path = secrets_dir / REDIS_PASSWORD_FILE
    try:
        password = path.read_text().strip()
    except OSError as error:
        raise ValueError(f"{path} is unreadable: {error.strerror} (the stack's "
                         "`secrets` service creates it on first start)") from None
    return with_password(url, password)


def variable(field: str) -> str:
    """The environment variable of a Settings field (`from` is a keyword: ONIONPOST_FROM)."""
    return "ONIONPOST_FROM" if field == "from_address" else f"ONIONPOST_{field.upper()}"


def read_environment(parsers: Mapping[str, Callable[[str], object]],
                     environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """Some fields' values, read as Settings reads them (names in any case, an empty value
    means the default: such fields are left out); a bad value raises ConfigError naming
    the variable."""
    environ = os.environ if environ is None else environ
    found = {name.upper(): value for name, value in environ.items()}
    values: dict[str, object] = {}
    for field, parse in parsers.items():
        text = found.get(variable(field), "")
        if not text:
            continue
        try:
            values[field] = parse(text)
        except ValueError as error:
            raise ConfigError(f"{variable(field)}: {error} (got {text!r})") from None
    return values


def choice(*allowed: str) -> Callable[[str], str]:
    """A parser that takes one of these words (Settings' Literal fields)."""
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"Input should be {' or '.join(map(repr, allowed))}")
        return value
    return check


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
