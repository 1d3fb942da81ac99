"""The compose stack's generated secrets (Redis password, rq-dashboard login): made once, on
first start, in the secrets volume, never in the image or the repository; shown to the owner
by `onionpost secrets`."""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from onionpost import maildir
from onionpost.exits import ConfigError
from onionpost.setting_values import REDIS_PASSWORD_FILE

if TYPE_CHECKING:
    from onionpost.settings import Settings

REDIS_PASSWORD = REDIS_PASSWORD_FILE  # what our services send (Settings.secrets_dir)
REDIS_CONF = "redis.conf"  # the same password for redis-server: `requirepass ...`
DASHBOARD_PASSWORD = "dashboard-password"
DASHBOARD_USER = "owner"
# Our services own the files; redis-server reads redis.conf through the group (group_add).
MODE = 0o440


def create(directory: Path) -> list[str]:
    """Make each secret that is missing and return their names; an existing one is kept
    (Redis and the services already use it)."""
    made = []
    for name in (REDIS_PASSWORD, DASHBOARD_PASSWORD):
        if not (directory / name).exists():
            _write(directory / name, secrets.token_urlsafe(32) + "\n")
            made.append(name)
    conf = f"requirepass {read(directory, REDIS_PASSWORD)}\n"
    conf_path = directory / REDIS_CONF
    if not conf_path.exists() or conf_path.read_text() != conf:
        _write(conf_path, conf)
        made.append(REDIS_CONF)
    return made


def read(directory: Path, name: str) -> str:
    try:
        return (directory / name).read_text().strip()
    except OSError as error:
        raise ConfigError(f"{directory / name} is unreadable: {error.strerror} (the stack's "
                          "`secrets` service creates it on first start)") from None


def _write(path: Path, text: str) -> None:
    maildir.write_private(path, text.encode(), MODE)


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(
        prog="onionpost secrets",
        description="Show the stack's generated secrets: the rq-dashboard login and the Redis "
                    "password. With --create (the `secrets` service of compose.yaml), make "
                    "those that are missing, printing no secret.")
    parser.add_argument("--create", action="store_true", help="make the missing secrets")
    parser.add_argument("directory", nargs="?", type=Path, default=settings.secrets_dir,
                        help="where they are (default: ONIONPOST_SECRETS_DIR)")
    args = parser.parse_args(argv)
    if args.directory is None:
        raise ConfigError("ONIONPOST_SECRETS_DIR is empty: no generated secrets here")
    if args.create:
        made = create(args.directory)
        print(f"secrets: created {' '.join(made)}" if made else "secrets: all present, kept")
        return 0
    print(f"rq-dashboard  user {DASHBOARD_USER}  password "
          f"{read(args.directory, DASHBOARD_PASSWORD)}")
    print(f"redis         password {read(args.directory, REDIS_PASSWORD)}")
    return 0
