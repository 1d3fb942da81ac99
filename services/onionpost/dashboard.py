"""`onionpost dashboard`: rq-dashboard (in the dashboard image only) on our Redis, reading jobs
as JSON, behind HTTP basic auth with the generated password."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

from onionpost import stack_secrets
from onionpost.exits import EX_OK, ConfigError
from onionpost.setting_values import LOG_LEVELS, choice, read_environment, redis_url_with_secret


@dataclass(frozen=True)
class DashboardSettings:
    """The settings the dashboard reads (Settings' own fields and defaults), read without
    pydantic: a container at rest holds what it imported (~7 MiB for pydantic-settings).
    tests/unit/test_dashboard_settings.py holds them equal to Settings'."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    secrets_dir: Path | None = None
    log_level: str = "INFO"


def load_settings() -> DashboardSettings:
    """cli.run's settings for this command (see cli.COMMANDS)."""
    read = DashboardSettings(**read_environment(  # type: ignore[arg-type]
        {"redis_url": str, "secrets_dir": Path, "log_level": choice(*LOG_LEVELS)}))
    try:
        return replace(read, redis_url=redis_url_with_secret(read.redis_url, read.secrets_dir))
    except ValueError as error:
        raise ConfigError(f"ONIONPOST_SECRETS_DIR: {error}") from None


def main(argv: list[str], settings: DashboardSettings) -> int:
    parser = argparse.ArgumentParser(
        prog="onionpost dashboard",
        description="rq-dashboard behind HTTP basic auth: user owner, password from "
                    "ONIONPOST_SECRETS_DIR (`onionpost secrets` shows it).")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9181)
    args = parser.parse_args(argv)
    if settings.secrets_dir is None:
        raise ConfigError("ONIONPOST_SECRETS_DIR is empty: rq-dashboard needs its password")
    password = stack_secrets.read(settings.secrets_dir, stack_secrets.DASHBOARD_PASSWORD)
    from rq_dashboard.cli import run  # only the dashboard image has it

    # Passed in-process: neither the password nor the Redis URL is in argv or environ.
    run.main(args=["--bind", args.bind, "--port", str(args.port), "--json",
                   "--redis-url", settings.redis_url, "--username", stack_secrets.DASHBOARD_USER,
                   "--password", password], standalone_mode=False)
    return EX_OK

