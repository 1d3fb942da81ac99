"""What reading the settings gives, comparable across readers: the settings, or which
variable was refused."""

from __future__ import annotations

from collections.abc import Callable

from onionpost.settings import ConfigError


def outcome(read: Callable[[], object]) -> object:
    try:
        return read()
    except ConfigError as error:
        return ("refused", str(error).split(":")[0])
