"""`onionpost pgp init`: the owner's OpenPGP key on the laptop, made by gpg when there is none,
and its public half in a file for the server (`onionpost pgp-key import` encrypts to it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from onionpost import maildir
from onionpost.exits import EX_CANTCREAT, EX_OK, CommandError, parse_args
from onionpost.sender import keyring
from onionpost.sender.neomutt import own_address
from onionpost.settings import Settings

DEFAULT_OUT = Path("owner.asc")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onionpost pgp", description="the owner's OpenPGP key (gpg's keyring: GNUPGHOME,"
        " else ~/.gnupg)")
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser(
        "init", help="make the owner's key if there is none; write its public key file")
    init.add_argument("--from", dest="sender", help="the key's address (default ONIONPOST_FROM,"
                      " else anon@<our onion>)")
    init.add_argument("--out", type=Path, default=DEFAULT_OUT,
                      help=f"the public key file for the server (default ./{DEFAULT_OUT})")
    init.add_argument("--new", action="store_true",
                      help="make a new key even if one exists (rotation)")
    init.add_argument("--no-passphrase", action="store_true",
                      help="no passphrase on the secret key: for tests and throw-away keys;"
                      " anyone who copies the keyring can then read all your mail")
    return parser


def main(argv: list[str], settings: Settings) -> int:
    args = parse_args(_parser(), argv)
    if isinstance(args, int):
        return args
    address = own_address(settings, args.sender)
    key = None if args.new else keyring.owner_key(address)
    if key is None:
        print(f"onionpost pgp: making a key for {address} (ed25519, cv25519)"
              + ("" if args.no_passphrase else "; gpg asks for its passphrase"), file=sys.stderr)
        fingerprint = keyring.generate(address, passphrase=not args.no_passphrase)
    else:
        fingerprint = key.fingerprint
        print(f"onionpost pgp: {address} already has a key", file=sys.stderr)
    _write(args.out, keyring.export(fingerprint))
    print(fingerprint)
    print(f"onionpost pgp: public key written to {args.out}; on the server:\n"
          f"  docker compose run --rm -T cli pgp-key import < {args.out.name}\n"
          "then `onionpost neomutt-config` again, so that neomutt signs with it",
          file=sys.stderr)
    return EX_OK


def _write(path: Path, data: bytes) -> None:
    """Atomically: a half-written key file copied to the server would be refused there."""
    path = path.expanduser()
    try:
        maildir.write_private(path, data, mode=0o644)
    except OSError as error:
        raise CommandError(EX_CANTCREAT, f"cannot write {path}: {error.strerror}") from None
