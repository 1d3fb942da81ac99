"""`onionpost pgp-key`: put the owner's OpenPGP public key where ingest reads it, checked as
ingest checks it (`import`), or show which key that is (`show`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from onionpost import maildir
from onionpost.exits import (
    EX_CANTCREAT,
    EX_CONFIG,
    EX_DATAERR,
    EX_OK,
    CommandError,
    parse_args,
)
from onionpost.pgp_key import MAX_KEY_BYTES, OwnerKey
from onionpost.settings import ConfigError, Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onionpost pgp-key", description="the owner's OpenPGP key, for encryption at rest")
    commands = parser.add_subparsers(dest="command", required=True)
    imported = commands.add_parser(
        "import", help="read a public key on stdin, check it, store it for ingest")
    imported.add_argument("--to", type=Path, help="where (default: ONIONPOST_PGP_KEY)")
    shown = commands.add_parser("show", help="the fingerprint of the stored key")
    shown.add_argument("--key", type=Path, help="which file (default: ONIONPOST_PGP_KEY)")
    return parser


def main(argv: list[str], settings: Settings) -> int:
    args = parse_args(_parser(), argv)
    if isinstance(args, int):
        return args
    if args.command == "show":
        key = OwnerKey.load(_target(args.key, settings))
        print(key.fingerprint)
        return EX_OK
    target = _target(args.to, settings)
    data = sys.stdin.buffer.read(MAX_KEY_BYTES + 1)
    if len(data) > MAX_KEY_BYTES:
        raise CommandError(EX_DATAERR, f"more than {MAX_KEY_BYTES} bytes on stdin: not a key")
    try:
        key = OwnerKey.parse(data, "stdin")
    except ConfigError as error:
        raise CommandError(EX_DATAERR, str(error)) from None
    try:
        maildir.write_private(target, key.armored(), mode=0o644)  # a public key
    except OSError as error:
        raise CommandError(EX_CANTCREAT, f"cannot write {target}: {error.strerror}") from None
    print(f"key {key.fingerprint} stored in {target}; ingest reads it at its start "
          "(docker compose restart ingest)")
    return EX_OK


def _target(path: Path | None, settings: Settings) -> Path:
    target = path or settings.pgp_key
    if target is None:
        raise CommandError(EX_CONFIG, "no ONIONPOST_PGP_KEY: say where with --to/--key")
    return target
