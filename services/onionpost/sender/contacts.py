"""The address book: `name address [fingerprint]` per line, so that `To: frank` reaches
frank's onion, encrypted to frank's key when we have it. `onionpost contacts add|list|remove`
edits it; `add --key FILE` also imports the key into the owner's GnuPG keyring."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from onionpost import maildir, onion
from onionpost.exits import (
    EX_CANTCREAT,
    EX_DATAERR,
    EX_NOUSER,
    EX_OK,
    CommandError,
    ConfigError,
    parse_args,
)
from onionpost.sender import keyring

if TYPE_CHECKING:
    from onionpost.settings import Settings

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
# RFC 5322 atext and dots (RFC 6532: any non-ASCII too), less "#", which starts a comment in
# the book. Nothing else: `;` `"` `\\` and controls would mean something in neomutt's config.
_LOCAL_PART = re.compile(r"[A-Za-z0-9!$%&'*+/=?^_`{|}~.\-\u0080-\U0010ffff]+")
_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")
HEADER = "# onionpost address book: one 'name address [key fingerprint]' per line\n"
MAX_KEY_BYTES = 1_000_000  # a public key with many signatures is tens of KB


def problem(name: str, address: str) -> str | None:
    """None if `name address` is a usable entry, else why not."""
    if not _NAME.match(name):
        return f"{name!r} is not a usable name (letters, digits, . _ + - ; no spaces or @)"
    local, at, domain = address.rpartition("@")
    if (not at or not _LOCAL_PART.fullmatch(local)
            or any(char.isspace() for char in local)):  # \u2028 too: a line break in the book
        return f"{address!r} is not an address (expected name@<56 characters>.onion)"
    reason = onion.problem(domain)
    return f"{address}: {reason}" if reason else None


@dataclass
class AddressBook:
    entries: dict[str, str] = field(default_factory=dict)  # lowercase name -> address
    keys: dict[str, str] = field(default_factory=dict)  # lowercase name -> key fingerprint

    @classmethod
    def parse(cls, text: str, origin: str = "address book") -> AddressBook:
        book = cls()
        for number, line in enumerate(text.splitlines(), 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) not in (2, 3) or (reason := _line_problem(words)):
                detail = reason if len(words) in (2, 3) else "expected 'name address [fingerprint]'"
                raise ValueError(f"{origin} line {number}: {detail}")
            book.add(*words)
        return book

    def line(self, name: str) -> str:
        key = self.keys.get(name)
        return f"{name} {self.entries[name]}{f' {key}' if key else ''}\n"

    def render(self) -> str:
        return HEADER + "".join(map(self.line, self.entries))

    def lookup(self, name: str) -> str | None:
        return self.entries.get(name.lower())

    def add(self, name: str, address: str, key: str | None = None) -> None:
        """Add or replace; a contact added again without a key has none."""
        local, _, domain = address.rpartition("@")
        self.entries[name.lower()] = f"{local}@{domain.lower()}"
        self.keys.pop(name.lower(), None)
        if key:
            self.keys[name.lower()] = key.upper()

    def remove(self, name: str) -> bool:
        self.keys.pop(name.lower(), None)
        return self.entries.pop(name.lower(), None) is not None


def _line_problem(words: list[str]) -> str | None:
    if len(words) == 3 and not _FINGERPRINT.match(words[2].upper()):
        return f"{words[2]!r} is not a key fingerprint (40 hexadecimal digits)"
    return problem(words[0], words[1])


def load(path: Path) -> AddressBook:
    """The book at `path` (missing: empty). A malformed line is a configuration error."""
    path = path.expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return AddressBook()
    except OSError as error:
        raise ConfigError(f"cannot read the address book {path}: {error.strerror}") from None
    try:
        return AddressBook.parse(text, str(path))
    except ValueError as error:
        raise ConfigError(str(error)) from None


def save(path: Path, book: AddressBook) -> None:
    """Write atomically, readable by the owner only (who one writes to is private)."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    maildir.write_private(path, book.render().encode("utf-8"))


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(
        prog="onionpost contacts",
        description=f"The address book ({settings.address_book}, ONIONPOST_ADDRESS_BOOK).")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add or replace a contact")
    add.add_argument("name")
    add.add_argument("address", help="name@<56 characters>.onion")
    add.add_argument("--key", type=Path, help="their OpenPGP public key file: imported into"
                     " your keyring, so mail to them is encrypted")
    commands.add_parser("list", help="print every contact")
    remove = commands.add_parser("remove", help="forget a contact")
    remove.add_argument("name")
    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args
    book = load(settings.address_book)
    if args.command == "list":
        sys.stdout.write("".join(map(book.line, book.entries)))
        return EX_OK
    if args.command == "add":
        reason = problem(args.name, args.address)
        if reason:
            raise CommandError(EX_DATAERR, reason)
        key = import_contact_key(args.key, args.address) if args.key else None
        book.add(args.name, args.address, key)
    elif not book.remove(args.name):
        raise CommandError(EX_NOUSER, f"no contact named {args.name!r}")
    try:
        save(settings.address_book, book)
    except OSError as error:
        raise CommandError(EX_CANTCREAT, f"cannot write {settings.address_book}:"
                                         f" {error.strerror}") from None
    return EX_OK


def import_contact_key(path: Path, address: str) -> str:
    """Check the file holds one key that can encrypt, import it, return its fingerprint."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_BYTES + 1)
    except OSError as error:
        raise CommandError(EX_DATAERR, f"cannot read {path}: {error.strerror}") from None
    if len(data) > MAX_KEY_BYTES:
        raise CommandError(EX_DATAERR, f"{path}: over {MAX_KEY_BYTES} bytes, not one public key")
    found = keyring.inspect(data)
    if len(found) != 1:
        raise CommandError(EX_DATAERR, f"{path}: expected one public key, found {len(found)}")
    [key] = found
    if key.secret:
        raise CommandError(EX_DATAERR, f"{path}: a secret key: ask for their public key"
                           " (gpg --armor --export)")
    if not key.can_encrypt:
        raise CommandError(EX_DATAERR, f"{path}: the key {key.fingerprint} cannot encrypt"
                           " (expired, revoked or no encryption subkey)")
    if not key.names(address):
        # neomutt's crypt-hook (neomutt-config) binds the address to this key anyway.
        print(f"onionpost contacts: note: the key's user ids ({', '.join(key.user_ids)}) do not"
              f" name {address}; mail to {address} is encrypted to it all the same",
              file=sys.stderr)
    keyring.import_key(data)
    return key.fingerprint
