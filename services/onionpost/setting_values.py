"""The values of ONIONPOST_* variables, read without pydantic: sizes, durations, delays,
host:port, a sender address, our onion domain. Settings validates with these, and so does
sendmail's light reader (onionpost.sender.config), which must start fast."""

from __future__ import annotations

import re
from pathlib import Path

from onionpost.exits import ConfigError

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
