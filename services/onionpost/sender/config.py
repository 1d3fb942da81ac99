"""sendmail's settings, read without pydantic: neomutt waits for `onionpost-sendmail` on
every send, and pydantic-settings alone takes longer to import than the rest of sendmail.
The fields are Settings' own (same variables, defaults and checks, from
onionpost.setting_values); tests/unit/test_sendmail_config.py holds the two readers equal."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from onionpost.setting_values import (
    LOG_LEVELS,
    check_sender,
    choice,
    normalise_domain,
    onion_domain,
    parse_delays,
    read_environment,
    split_hostport,
)


@dataclass(frozen=True)
class SendSettings:
    """The settings sendmail reads (a subset of Settings, with the same defaults)."""

    domain: str = ""
    onion_hostname_file: Path = Path("/var/lib/tor/onionpost/hostname")
    from_address: str = ""
    tor_socks: str = "127.0.0.1:9050"
    send_starttls: str = "off"
    send_timeout: float = 60.0
    send_retry_delays: tuple[float, ...] = (10.0, 40.0)
    send_queue: str = "off"
    outbox: Path = Path("~/.local/share/onionpost/outbox")
    address_book: Path = Path("~/.config/onionpost/contacts")
    log_level: str = "INFO"

    @staticmethod
    def hostport(value: str) -> tuple[str, int]:
        return split_hostport(value)

    def onion_domain(self) -> str:
        return onion_domain(self.domain, self.onion_hostname_file)


def _hostport(value: str) -> str:
    split_hostport(value)
    return value


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("Input should be greater than 0")
    return number


def _delays(value: str) -> tuple[float, ...]:
    delays = cast(tuple[float, ...], parse_delays(value))
    if not all(delay >= 0 for delay in delays):
        raise ValueError("Input should be greater than or equal to 0")
    return delays


_PARSERS: dict[str, Callable[[str], object]] = {
    "domain": normalise_domain,
    "onion_hostname_file": Path,
    "from_address": check_sender,
    "tor_socks": _hostport,
    "send_starttls": choice("off", "on"),
    "send_timeout": _positive,
    "send_retry_delays": _delays,
    "send_queue": choice("off", "on"),
    "outbox": Path,
    "address_book": Path,
    "log_level": choice(*LOG_LEVELS),
}


def load(environ: Mapping[str, str] | None = None) -> SendSettings:
    """Read the environment as Settings does; a bad value raises ConfigError naming it."""
    return SendSettings(**read_environment(_PARSERS, environ))  # type: ignore[arg-type]
