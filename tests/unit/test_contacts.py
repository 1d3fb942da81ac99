"""The address book file and `onionpost contacts add|list|remove`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from onionpost import cli, onion
from onionpost.sender import contacts
from onionpost.sender.contacts import AddressBook
from onionpost.settings import ConfigError, Settings


def new_onion() -> str:
    return onion.from_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())


FRANK, BOB = f"frank@{new_onion()}", f"bob@{new_onion()}"


def run(argv: list[str], book: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.invoke("contacts", argv, Settings(address_book=book))
    out, err = capsys.readouterr()
    return code, out, err


def test_parse_and_render_round_trip() -> None:
    text = f"# friends\nfrank {FRANK}\n\n  bob   {BOB}   # from the conference\n"
    book = AddressBook.parse(text)
    assert book.entries == {"frank": FRANK, "bob": BOB}
    assert AddressBook.parse(book.render()).entries == book.entries


def test_a_key_fingerprint_is_kept_and_dropped_with_its_contact() -> None:
    fingerprint = "0123456789abcdef" * 2 + "01234567"
    book = AddressBook.parse(f"frank {FRANK} {fingerprint}\nbob {BOB}\n")
    assert book.keys == {"frank": fingerprint.upper()}
    assert AddressBook.parse(book.render()).keys == book.keys
    book.add("frank", FRANK)  # added again without a key: none
    assert book.keys == {}
    book.add("bob", BOB, fingerprint)
    book.remove("bob")
    assert book.keys == {}


def test_names_are_case_insensitive() -> None:
    book = AddressBook.parse(f"Frank {FRANK}\n")
    assert book.lookup("frank") == book.lookup("FRANK") == FRANK


@pytest.mark.parametrize(("line", "words"), [
    ("frank", "expected 'name address [fingerprint]'"),
    (f"frank {FRANK} extra", "not a key fingerprint"),
    (f"frank {FRANK} {'A' * 40} extra", "expected 'name address [fingerprint]'"),
    ("frank frank@example.org", "not an .onion address"),
    ("frank frank@expyuzz4wqqyqhjn.onion", "v2 onion"),
    (f"fr@nk {FRANK}", "not a usable name"),
    (f"frank {FRANK.split('@')[1]}", "not an address"),
])
def test_bad_lines_name_the_line(line: str, words: str) -> None:
    with pytest.raises(ValueError, match=r"line 2: .*") as error:
        AddressBook.parse(f"bob {BOB}\n{line}\n")
    assert words in str(error.value)


def test_load_missing_is_empty_and_bad_is_a_config_error(tmp_path: Path) -> None:
    assert contacts.load(tmp_path / "none").entries == {}
    bad = tmp_path / "contacts"
    bad.write_text("frank frank@example.org\n")
    with pytest.raises(ConfigError, match="line 1"):
        contacts.load(bad)


def test_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = tmp_path / "config" / "onionpost" / "contacts"
    assert run(["add", "frank", FRANK], book, capsys)[0] == 0
    assert run(["add", "bob", BOB], book, capsys)[0] == 0
    assert run(["list"], book, capsys) == (0, f"frank {FRANK}\nbob {BOB}\n", "")
    assert stat.S_IMODE(book.stat().st_mode) == 0o600
    assert stat.S_IMODE(book.parent.stat().st_mode) == 0o700
    assert run(["remove", "FRANK"], book, capsys)[0] == 0
    assert run(["list"], book, capsys)[1] == f"bob {BOB}\n"
    assert contacts.load(book).entries == {"bob": BOB}


def test_add_replaces_an_existing_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = tmp_path / "contacts"
    run(["add", "frank", BOB], book, capsys)
    run(["add", "frank", FRANK], book, capsys)
    assert contacts.load(book).entries == {"frank": FRANK}


def test_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = tmp_path / "contacts"
    code, _, err = run(["add", "frank", "frank@example.org"], book, capsys)
    assert code == 65 and "not an .onion address" in err
    assert not book.exists()
    code, _, err = run(["remove", "nobody"], book, capsys)
    assert code == 67 and "no contact named 'nobody'" in err
    assert run(["frobnicate"], book, capsys)[0] == 64
    assert run([], book, capsys)[0] == 64


def test_an_unwritable_book_exits_73_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    book = Path("/proc/onionpost-contacts")  # reads as missing; nobody, root included, writes
    code, _, err = run(["add", "frank", FRANK], book, capsys)
    assert code == 73
    assert err.startswith(f"onionpost contacts: cannot write {book}: ") and err.count("\n") == 1


@pytest.mark.parametrize("local", ["y;set", 'z"q', "a\\b", "a#b", "a(b)", "a,b", "a:b",
                                   "a<b>", "a\x01b", "a\x7fb",
                                   "a\u2028b", "a\x85b"])
def test_a_local_part_outside_rfc_5322_atext_is_refused(
        local: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # These reached neomutt's config (`;` starts a command there) and the book (`#` starts
    # a comment: the saved book no longer loaded).
    book = tmp_path / "contacts"
    code, _, err = run(["add", "frank", f"{local}@{new_onion()}"], book, capsys)
    assert code == 65 and "is not an address" in err, err
    assert not book.exists()


def test_every_atext_character_is_taken_and_the_book_loads_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    address = f"a!$%&'*+/=?^_`{{|}}~.b-9é@{new_onion()}"  # é: RFC 6532
    book = tmp_path / "contacts"
    assert run(["add", "odd", address], book, capsys)[0] == 0
    assert contacts.load(book).lookup("odd") == address
