"""The fetch protocol's names and lines: what is accepted, and everything that is not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onionpost import maildir
from onionpost.fetch import protocol
from onionpost.fetch.protocol import Entry, ProtocolError

GOOD = [
    "new/1700000000.M123R0A1B2C3D4E5F.onionpost,S=1234",
    "cur/1700000000.M123R0A1B2C3D4E5F.onionpost,S=1234:2,S",
    "cur/1700000000.M1P2Q3.host:2,",
    "cur/1700000000.M1P2Q3.host:2,FRS",
    "new/1234.V801I5M0.mail=host+x,S=9",
]
BAD = [
    "", "new/", "tmp/1700.M1.x", "new/../../etc/passwd", "new/..", "new/.hidden",
    "new/a/b", "/new/abc", "new/abc def", "new/a\x00b", "new/a..b", "new/a:2,S/../x",
    "cur/abc:1,S", "new/" + "a" * 300, "NEW/abc", "new\\abc", "new/ä",
]


@pytest.mark.parametrize("name", GOOD)
def test_good_names(name: str) -> None:
    assert protocol.check_name(name) == name


@pytest.mark.parametrize("name", BAD)
def test_bad_names(name: str) -> None:
    with pytest.raises(ProtocolError):
        protocol.check_name(name)


def test_ingest_file_names_are_valid() -> None:
    for _ in range(200):
        name = maildir.file_name(maildir.new_queue_id(), 4321)
        assert protocol.is_valid_name(f"new/{name}")
        assert protocol.is_valid_name(f"cur/{name}:2,RS")


@given(st.text(max_size=80))
def test_no_valid_name_can_leave_its_directory(text: str) -> None:
    name = f"new/{text}"
    if protocol.is_valid_name(name):
        assert "/" not in text and ".." not in text and not text.startswith(".")
        assert text.isascii() and text.isprintable() and " " not in text


def test_unique_drops_directory_and_flags() -> None:
    assert protocol.unique_of("cur/1700.M1R2.onionpost,S=5:2,S") == "1700.M1R2.onionpost,S=5"
    assert protocol.unique_of("new/1700.M1R2.onionpost,S=5") == "1700.M1R2.onionpost,S=5"


@pytest.mark.parametrize("line", [b"", b"no newline", b"\xff\xfe\n", b"two  spaces\n",
                                  b"\n", b"tab\there\n", b"x" * 2000])
def test_decode_rejects_garbage(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.decode(line)


def test_list_lines() -> None:
    assert protocol.parse_list_line(["new/1.M1.x", "12"]) == Entry("new/1.M1.x", 12)
    assert protocol.parse_list_line(["END", "3", "1"]) == (3, 1)
    for words in (["new/1.M1.x"], ["new/1.M1.x", "-1"], ["new/1.M1.x", "1e3"],
                  ["new/../x", "1"], ["END", "x", "0"]):
        with pytest.raises(ProtocolError):
            protocol.parse_list_line(words)


def test_data_header_must_match_the_request() -> None:
    entry = Entry("new/1.M1.x", 10)
    assert protocol.parse_data_header(["DATA", "new/1.M1.x", "10"], entry) == 10
    assert protocol.parse_data_header(["GONE", "new/1.M1.x"], entry) is None
    for words in (["DATA", "new/1.M1.x", "11"], ["DATA", "new/2.M1.x", "10"],
                  ["DATA", "new/1.M1.x"], ["GONE", "new/2.M1.x"], ["SUM", "new/1.M1.x", "10"]):
        with pytest.raises(ProtocolError):
            protocol.parse_data_header(words, entry)


def test_sum_and_deleted_replies() -> None:
    entry = Entry("new/1.M1.x", 10)
    digest = "ab" * 32
    assert protocol.parse_sum(["SUM", entry.name, "10", digest], entry) == (10, digest)
    assert protocol.parse_sum(["GONE", entry.name], entry) is None
    with pytest.raises(ProtocolError):
        protocol.parse_sum(["SUM", entry.name, "10", "AB" * 32], entry)
    assert protocol.parse_deleted(["DELETED", entry.name], entry.name) is True
    assert protocol.parse_deleted(["GONE", entry.name], entry.name) is False
    with pytest.raises(ProtocolError):
        protocol.parse_deleted(["DELETED", "new/2.M1.x"], entry.name)


def test_requests_are_checked_on_the_server() -> None:
    assert protocol.parse_request(b"LIST\n") == ("LIST", [])
    assert protocol.parse_request(b"DEL new/1.M1.x 10\n") == ("DEL", ["new/1.M1.x", "10"])
    for line in (b"GET ../../etc/shadow\n", b"DEL new/1.M1.x\n", b"RM new/1.M1.x\n",
                 b"GET new/1.M1.x extra\n", b"DEL new/1.M1.x -3\n", b"id\n"):
        with pytest.raises(ProtocolError):
            protocol.parse_request(line)


def test_server_error_text() -> None:
    assert protocol.server_error(["ERR", "no", "Maildir"]) == "no Maildir"
    assert protocol.server_error(["ERR"]) == "unspecified error"
    assert protocol.server_error(["BYE"]) is None
