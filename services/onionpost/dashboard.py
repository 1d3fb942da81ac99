"""`onionpost dashboard`: rq-dashboard (in the dashboard image only) on our Redis, reading jobs
as JSON, behind HTTP basic auth with the generated password; `--check` for the healthcheck."""

from __future__ import annotations

import argparse
import base64
import urllib.error
import urllib.request

from onionpost import stack_secrets
from onionpost.settings import ConfigError, Settings

EX_OK, EX_UNAVAILABLE = 0, 69


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(
        prog="onionpost dashboard",
        description="rq-dashboard behind HTTP basic auth: user owner, password from "
                    "ONIONPOST_SECRETS_DIR (`onionpost secrets` shows it).")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9181)
    parser.add_argument("--check", action="store_true",
                        help="exit 0 if the dashboard answers 200 to our login, else 69")
    args = parser.parse_args(argv)
    if settings.secrets_dir is None:
        raise ConfigError("ONIONPOST_SECRETS_DIR is empty: rq-dashboard needs its password")
    password = stack_secrets.read(settings.secrets_dir, stack_secrets.DASHBOARD_PASSWORD)
    if args.check:
        return EX_OK if answers(args.port, password) else EX_UNAVAILABLE
    from rq_dashboard.cli import run  # only the dashboard image has it

    # Passed in-process: neither the password nor the Redis URL is in argv or environ.
    run.main(args=["--bind", args.bind, "--port", str(args.port), "--json",
                   "--redis-url", settings.redis_url, "--username", stack_secrets.DASHBOARD_USER,
                   "--password", password], standalone_mode=False)
    return EX_OK


def answers(port: int, password: str) -> bool:
    login = f"{stack_secrets.DASHBOARD_USER}:{password}".encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={
        "Authorization": "Basic " + base64.b64encode(login).decode()})
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False
