"""What the guardian reads from the Maildir: arrival times from names, messages moved to
cur/ by a reader, and sender/subject for summary mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from onionpost import maildir
from onionpost.guardian import mailbox


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
])
def test_sender_and_subject(box: Path, header: bytes, expected: tuple[str, str]) -> None:
    path = put(box, "new", "1800000000.M1R2.onionpost,S=1", header + b"\r\nbody\r\n")
    assert mailbox.sender_and_subject(path) == expected


def test_only_the_header_is_read(box: Path) -> None:
    path = put(box, "new", "1800000000.M1R2.onionpost,S=1",
               b"Subject: top\r\n\r\nSubject: from the body\r\n" + b"x" * 100_000)
    assert mailbox.sender_and_subject(path) == ("(no sender)", "top")
