"""What the guardian reads from the Maildir: arrival times from names, messages moved to
cur/ by a reader, and sender/subject for summary mode (hostile headers included)."""

from __future__ import annotations

from collections.abc import Callable
from email.headerregistry import AddressHeader, UnstructuredHeader
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onionpost import maildir
from onionpost.guardian import mailbox
from onionpost.guardian.mailbox import FIELD_CHARS, SUBJECT_HIDDEN, summary_of
from onionpost.ingest.pgpmime import wrap


@pytest.fixture
def box(tmp_path: Path) -> Path:
    maildir.ensure(tmp_path / "inbox")
    return tmp_path / "inbox"


def put(box: Path, sub: str, name: str, content: bytes = b"Subject: x\r\n\r\nb\r\n") -> Path:
    path = box / sub / name
    path.write_bytes(content)
    return path


def test_arrivals_come_from_maildir_names_in_new_and_cur(box: Path) -> None:
    put(box, "new", "1800000000.M1R2.onionpost,S=10")
    put(box, "cur", "1800000005.M3R4.onionpost,S=10:2,S")
    put(box, "cur", "1700000000.12345_1.otherhost:2,")  # another deliverer, same convention
    put(box, "new", "notatime.txt")
    put(box, "tmp", "1800000009.M5R6.onionpost,S=10")  # not delivered yet
    assert sorted(mailbox.arrivals(box)) == [1_700_000_000.0, 1_800_000_000.0, 1_800_000_005.0]
    assert mailbox.arrivals(box.parent / "missing") == []


def test_find_follows_a_message_into_cur(box: Path) -> None:
    name = "1800000000.M1R2.onionpost,S=10"
    assert mailbox.find(box, name) is None
    put(box, "new", name)
    assert mailbox.find(box, name) == box / "new" / name
    (box / "new" / name).rename(box / "cur" / f"{name}:2,S")
    assert mailbox.find(box, name) == box / "cur" / f"{name}:2,S"
    assert mailbox.find(box, "../../etc/passwd") is None


@pytest.mark.parametrize(("header", "expected"), [
    (b"From: Someone <a@example.org>\r\nSubject: hello\r\n", ("a@example.org", "hello")),
    (b"From: b@x.onion\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n", ("b@x.onion", "caf\u00e9")),
    (b"Subject: only\r\n", ("(no sender)", "only")),
    (b"From: \r\n", ("(no sender)", "(no subject)")),
    (b"From: undisclosed-recipients:;\r\nSubject: s\r\n", ("(no sender)", "s")),
    (b"from: a@b.onion\r\nSUBJECT: a\r\n  folded\r\n\tone\r\n", ("a@b.onion", "a  folded\tone")),
    (b"From: x@y.onion (Your Bank)\r\n", ("x@y.onion", "(no subject)")),
    # encrypted, the Subject hidden (at rest by ingest, or by the sender's neomutt)
    (b"From: a@b.onion\r\nSubject: ...\r\nContent-Type: Multipart/Encrypted;\r\n"
     b" protocol=\"application/pgp-encrypted\"\r\n", ("a@b.onion", SUBJECT_HIDDEN)),
    (b"Subject: ...\r\n", ("(no sender)", "...")),  # a real subject of three dots
    (b"Subject: kept\r\nContent-Type: multipart/encrypted\r\n", ("(no sender)", "kept")),
])
def test_sender_and_subject(box: Path, header: bytes, expected: tuple[str, str]) -> None:
    path = put(box, "new", "1800000000.M1R2.onionpost,S=1", header + b"\r\nbody\r\n")
    assert mailbox.sender_and_subject(path) == expected


def test_a_message_stored_encrypted_says_its_subject_is_hidden() -> None:
    message = b"From: a@b.onion\r\nSubject: the real one\r\n\r\nbody\r\n"
    armored = b"-----BEGIN PGP MESSAGE-----\n\nxx\n-----END PGP MESSAGE-----\n"
    stored = b"Return-Path: <a@b.onion>\r\n" + b"".join(wrap(message, armored, True))
    assert summary_of(stored) == ("a@b.onion", SUBJECT_HIDDEN)
    kept = b"".join(wrap(message, armored, False))
    assert summary_of(kept) == ("a@b.onion", "the real one")


def test_only_the_header_is_read(box: Path) -> None:
    path = put(box, "new", "1800000000.M1R2.onionpost,S=1",
               b"Subject: top\r\n\r\nSubject: from the body\r\n" + b"x" * 100_000)
    assert mailbox.sender_and_subject(path) == ("(no sender)", "top")


@pytest.mark.parametrize("sender", [
    b"Your Bank Security Team",               # a name, no address: the parser quotes it
    b'"Your Bank" x@y.onion',                 # a name the parser folds into the local part
    b"<Your Bank>",
    b'Bank <"Your Bank"@y.onion>',            # a quoted local part that reads as a name
    b"=?utf-8?q?Your_Bank?=",
])
def test_no_display_name_is_ever_shown(sender: bytes) -> None:
    assert summary_of(b"From: " + sender + b"\r\n\r\n") == ("(no sender)", "(no subject)")


@pytest.mark.parametrize(("header", "expected"), [
    (b"From: (x).y@z.onion\r\n", ("(no sender)", "(no subject)")),   # TypeError inside email
    (b"From: =?utf-8?q?a=0Db?= <x@y.onion>\r\n", ("(no sender)", "(no subject)")),
    (b"Subject: =?utf-8?b?!!!?=\r\n", ("(no sender)", "(no subject)")),
    (b"Subject: =?x-unknown?q?caf=E9?=\r\n", ("(no sender)", "caf\ufffd")),
    (b"Subject: =?utf-8?q?=FF=FE?= \xff raw\r\n", ("(no sender)", "\ufffd\ufffd \ufffd raw")),
    (b"Subject: =?punycode?q?abc?=\r\n", ("(no sender)", "\x82\x81\x80")),  # cleaned later
])
def test_undecodable_or_broken_headers_give_placeholders(
        header: bytes, expected: tuple[str, str]) -> None:
    assert summary_of(header + b"\r\n") == expected


@pytest.fixture
def parsed_lengths(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The email parser, unchanged, but refusing (and recording) any value over the cap."""
    lengths: list[int] = []

    def bounded(real: Callable[..., None]) -> classmethod[Any, ..., None]:
        def parse(cls: type, value: str, kwds: dict[str, Any]) -> None:
            lengths.append(len(value))
            assert len(value) <= FIELD_CHARS, f"the parser was handed {len(value)} characters"
            real(cls, value, kwds)
        return classmethod(parse)

    for header_class in (AddressHeader, UnstructuredHeader):
        monkeypatch.setattr(header_class, "parse", bounded(header_class.parse.__func__))  # type: ignore[attr-defined]  # a classmethod's function
    return lengths


FOLDED = b"\r\n ".join([b"word"] * 6000)


@pytest.mark.parametrize(("header", "expected"), [
    (b'From: "a".' * 1 + b'"a".' * 8200 + b"x@y.onion\r\n", ("(no sender)", "(no subject)")),
    (b"From: Name <a@b.onion>\r\n " + b"(c)" * 11_000 + b"\r\n", ("(no sender)", "(no subject)")),
    (b"Subject: " + b"=?utf-8?q?a?= " * 2400 + b"\r\n", ("(no sender)", "a" * 36)),
    (b"From: a@b.onion\r\nSubject: " + FOLDED + b"\r\n", ("a@b.onion", "word word")),
])
def test_a_huge_header_reaches_the_parser_cut_to_the_cap(
        parsed_lengths: list[int], header: bytes, expected: tuple[str, str]) -> None:
    assert len(header) > 32_000
    sender, subject = summary_of(header + b"\r\n")
    assert (sender, subject[:len(expected[1])]) == expected
    assert "=?" not in subject
    assert all(length <= FIELD_CHARS for length in parsed_lengths)


def test_an_over_long_from_is_not_parsed_at_all(parsed_lengths: list[int]) -> None:
    assert mailbox.address_of("x" * (FIELD_CHARS - 11) + " <a@b.onion>") is None
    assert mailbox.address_of("x" * (FIELD_CHARS - 12) + " <a@b.onion>") == "a@b.onion"
    assert parsed_lengths == [FIELD_CHARS]


FIELD_TEXT = st.text(st.sampled_from(list('=?q?b?utf-8 <>@"(),.:;\\[]\r\n\t\x1bab\u202e\udcff')))


@given(st.lists(st.tuples(st.sampled_from(["From", "Subject", "X"]),
                          FIELD_TEXT | st.text()), max_size=4))
def test_any_header_gives_an_address_or_a_placeholder(fields: list[tuple[str, str]]) -> None:
    head = "".join(f"{name}: {value}\r\n" for name, value in fields) + "\r\n"
    sender, subject = summary_of(head.encode("utf-8", "surrogateescape"))
    assert sender == "(no sender)" or (" " not in sender and '"' not in sender
                                       and sender.count("@") == 1)
    assert subject
