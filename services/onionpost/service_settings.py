"""The settings of the long-running services (ingest, guardian, notifier, watch): checked by
Settings in a child process that then exits, so that a service at rest holds none of
pydantic and pydantic-settings (~7 MiB per process: docs/benchmarks.md, "Compose stack")."""

from __future__ import annotations

import os
import pickle
import traceback
from typing import TYPE_CHECKING, Any, cast

from onionpost.exits import ConfigError
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
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: check, send (values, error) to the parent, exit
        try:
            os.close(reader)
            with os.fdopen(writer, "wb") as pipe:
                pipe.write(pickle.dumps(_checked()))
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        sent = pipe.read()
    os.waitpid(pid, 0)
    if not sent:
        raise ConfigError("the settings could not be checked (see the error above)")
    values, error = pickle.loads(sent)  # from our own child
    if error is not None:
        raise ConfigError(error)
    return cast("Settings", SettingValues(values))


def _checked() -> tuple[dict[str, Any] | None, str | None]:
    from onionpost.settings import load_settings as load_checked

    try:
        return load_checked().model_dump(), None
    except ConfigError as error:
        return None, str(error)
