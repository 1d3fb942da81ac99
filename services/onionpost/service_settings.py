"""The settings of the long-running services (ingest, guardian, notifier, watch): checked by
Settings in a child process that then exits, so that a service at rest holds none of
pydantic and pydantic-settings (~7 MiB per process: docs/benchmarks.md, "Compose stack")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from onionpost.child import run_in_child
from onionpost.setting_values import onion_domain, split_hostport

if TYPE_CHECKING:
    from onionpost.settings import Settings


class SettingValues:
    """The values of a checked Settings as plain attributes, with Settings' methods.
    tests/unit/test_service_settings.py holds the two equal."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    if TYPE_CHECKING:
        def __getattr__(self, name: str) -> Any: ...

    @staticmethod
    def hostport(value: str) -> tuple[str, int]:
        return split_hostport(value)

    def lifetime(self) -> float:
        return float(self.session_lifetime or self.data_timeout + 300)

    def onion_domain(self) -> str:
        return onion_domain(self.domain, self.onion_hostname_file)


def load_settings() -> Settings:
    """cli.run's settings for a service: Settings' values, or its ConfigError."""
    return cast("Settings", SettingValues(run_in_child(_checked_values)))


def _checked_values() -> dict[str, Any]:
    from onionpost.settings import load_settings as load_checked

    return load_checked().model_dump()
