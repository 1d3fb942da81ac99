"""The address book: `name address` per line, so that `To: frank` reaches frank's onion.
`onionpost contacts add|list|remove` edits it."""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from onionpost import maildir, onion
from onionpost.settings import ConfigError, Settings

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
HEADER = "# onionpost address book: one 'name address' per line\n"


def problem(name: str, address: str) -> str | None:
    """None if `name address` is a usable entry, else why not."""
    if not _NAME.match(name):
        return f"{name!r} is not a usable name (letters, digits, . _ + - ; no spaces or @)"
    local, at, domain = address.rpartition("@")
    if not at or not local or any(char.isspace() for char in local):
        return f"{address!r} is not an address (expected name@<56 characters>.onion)"
    reason = onion.problem(domain)
    return f"{address}: {reason}" if reason else None


@dataclass
class AddressBook:
    entries: dict[str, str] = field(default_factory=dict)  # lowercase name -> address

    @classmethod
    def parse(cls, text: str, origin: str = "address book") -> AddressBook:
        book = cls()
        for number, line in enumerate(text.splitlines(), 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) != 2 or (reason := problem(*words)):
                detail = "expected 'name address'" if len(words) != 2 else reason
                raise ValueError(f"{origin} line {number}: {detail}")
            book.add(*words)
        return book

    def render(self) -> str:
        return HEADER + "".join(f"{name} {address}\n" for name, address in self.entries.items())

    def lookup(self, name: str) -> str | None:
        return self.entries.get(name.lower())

    def add(self, name: str, address: str) -> None:
        local, _, domain = address.rpartition("@")
        self.entries[name.lower()] = f"{local}@{domain.lower()}"

    def remove(self, name: str) -> bool:
        return self.entries.pop(name.lower(), None) is not None


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
    commands.add_parser("list", help="print every contact")
    remove = commands.add_parser("remove", help="forget a contact")
    remove.add_argument("name")
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # argparse said --help (0) or what is wrong (usage: 64)
        return os.EX_USAGE if done.code else 0
    book = load(settings.address_book)
    if args.command == "list":
        sys.stdout.write("".join(f"{name} {address}\n" for name, address in book.entries.items()))
        return 0
    if args.command == "add":
        reason = problem(args.name, args.address)
        if reason:
            print(f"onionpost contacts: {reason}", file=sys.stderr)
            return os.EX_DATAERR
        book.add(args.name, args.address)
    elif not book.remove(args.name):
        print(f"onionpost contacts: no contact named {args.name!r}", file=sys.stderr)
        return os.EX_NOUSER
    try:
        save(settings.address_book, book)
    except OSError as error:
        print(f"onionpost contacts: cannot write {settings.address_book}: {error.strerror}",
              file=sys.stderr)
        return os.EX_CANTCREAT
    return 0
