"""`onionpost dashboard`: rq-dashboard (in the dashboard image only) on our Redis, reading jobs
as JSON, behind HTTP basic auth with the generated password."""

from __future__ import annotations

import argparse

from onionpost import stack_secrets
from onionpost.exits import EX_OK
from onionpost.settings import ConfigError, Settings


def main(argv: list[str], settings: Settings) -> int:
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

