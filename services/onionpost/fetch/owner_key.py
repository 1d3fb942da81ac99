"""`onionpost owner-key new NAME`: an x25519 key pair for an owner-only (client-authorized)
onion service (onionpost.tor.client_auth), written where tor reads it on each side."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from onionpost import maildir
from onionpost.settings import Settings
from onionpost.tor.client_auth import OwnerKey

EX_OK, EX_USAGE, EX_CANTCREAT = 0, 64, 73
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def write_private(path: Path, text: str, like: Path | None = None) -> None:
    """Write a key file 0600 (atomically, durably); owned like `like` (tor refuses files
    it cannot read)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    maildir.write_private(path, (text + "\n").encode())
    if like is not None and os.geteuid() == 0:
        owner = like.stat()
        os.chown(path, owner.st_uid, owner.st_gid)
        os.chown(path.parent, owner.st_uid, owner.st_gid)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onionpost owner-key",
        description="Client authorization for an owner-only onion (e.g. the fetch onion).")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="make a key pair")
    new.add_argument("name", help="a name for this key, e.g. laptop")
    new.add_argument("--onion", help="the service's address (default: HS_DIR/hostname)")
    new.add_argument("--hs-dir", type=Path,
                     help="the service's HiddenServiceDir: write authorized_clients/NAME.auth")
    new.add_argument("--client-dir", type=Path,
                     help="the owner's ClientOnionAuthDir: write NAME.auth_private there "
                          "(default: print it)")
    return parser


def _onion_of(args: argparse.Namespace) -> str:
    if args.onion:
        return args.onion
    if args.hs_dir is None:
        raise ValueError("--onion or --hs-dir is needed (the private file names the address)")
    return (args.hs_dir / "hostname").read_text().split()[0]


def main(argv: list[str], settings: Settings) -> int:
    args = _parser().parse_args(argv)
    if not _NAME.match(args.name):
        print("onionpost owner-key: NAME: letters, digits, - and _ only", file=sys.stderr)
        return EX_USAGE
    key = OwnerKey.generate()
    try:
        onion = _onion_of(args)
        client_line = key.client_line(onion)
    except (OSError, ValueError) as error:
        print(f"onionpost owner-key: {error}", file=sys.stderr)
        return EX_USAGE
    try:
        if args.hs_dir is not None:
            auth = args.hs_dir / "authorized_clients" / f"{args.name}.auth"
            write_private(auth, key.service_line(), like=args.hs_dir)
            print(f"wrote {auth} (reload tor to apply)")
        else:
            print(f"# service: <HiddenServiceDir>/authorized_clients/{args.name}.auth\n"
                  f"{key.service_line()}")
        if args.client_dir is not None:
            private = args.client_dir / f"{args.name}.auth_private"
            write_private(private, client_line)
            print(f"wrote {private} (torrc: ClientOnionAuthDir {args.client_dir})")
        else:
            print(f"# this machine: <ClientOnionAuthDir>/{args.name}.auth_private (secret)\n"
                  f"{client_line}")
    except OSError as error:
        print(f"onionpost owner-key: {error}", file=sys.stderr)
        return EX_CANTCREAT
    return EX_OK
