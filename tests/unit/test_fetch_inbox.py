"""The local Maildir: durable delivery, leftovers, the lock and the fetch record."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from onionpost.fetch.inbox import (
    BusyError,
    Delivery,
    FetchRecord,
    Fingerprint,
    LocalMaildir,
    MismatchError,
    sha256_file,
)
from onionpost.fetch.protocol import Entry, ProtocolError

BODY = b"Subject: hi\r\n\r\nhello\r\n"
DIGEST = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def inbox(tmp_path: Path) -> LocalMaildir:
    local = LocalMaildir(tmp_path / "inbox")
    local.create()
    return local


def test_delivery_keeps_the_server_name(inbox: LocalMaildir) -> None:
    for name in ("new/1700.M1R1.onionpost,S=22", "cur/1700.M1R2.onionpost,S=22:2,RS"):
        delivery = inbox.start(Entry(name, len(BODY)))
        delivery.write(BODY[:5])
        delivery.write(BODY[5:])
        assert delivery.verify(DIGEST) == Fingerprint(len(BODY), DIGEST)
        assert not (inbox.root / name).exists()  # not before it is durable
        inbox.commit([delivery])
        assert (inbox.root / name).read_bytes() == BODY
    assert list((inbox.root / "tmp").iterdir()) == []
    assert set(inbox.present()) == {"1700.M1R1.onionpost,S=22", "1700.M1R2.onionpost,S=22"}


@pytest.mark.parametrize(("size", "digest"), [(len(BODY), "0" * 64), (len(BODY) + 1, DIGEST)])
def test_a_mismatch_publishes_nothing(inbox: LocalMaildir, size: int, digest: str) -> None:
    delivery = inbox.start(Entry("new/1700.M1R1.x", size))
    delivery.write(BODY)
    with pytest.raises(MismatchError):
        delivery.verify(digest)
    assert inbox.present() == {}
    assert list((inbox.root / "tmp").iterdir()) == []


def test_an_unsafe_name_is_refused_before_any_file(inbox: LocalMaildir) -> None:
    with pytest.raises(ProtocolError):
        inbox.start(Entry("new/../../x", 3))
    assert list(inbox.root.parent.iterdir()) == [inbox.root]


def _verified(inbox: LocalMaildir, name: str) -> Delivery:
    delivery = inbox.start(Entry(name, len(BODY)))
    delivery.write(BODY)
    delivery.verify(DIGEST)
    return delivery


@pytest.mark.parametrize("taken", ["new/1700.M1R1.x", "cur/1700.M1R1.x:2,S"])
def test_a_taken_name_is_never_replaced(inbox: LocalMaildir, taken: str) -> None:
    """The file that is there keeps its content (on a case-insensitive disk `new/abc` is
    the owner's `new/ABC`: here the owner's file simply has the exact name); ours goes,
    and the other messages of the batch are placed as usual."""
    clashing, other = _verified(inbox, taken), _verified(inbox, "new/1700.M2R2.x")
    (inbox.root / taken).write_bytes(b"the owner's own message")

    clashes = inbox.commit([clashing, other])

    assert (inbox.root / taken).read_bytes() == b"the owner's own message"
    assert (inbox.root / "new/1700.M2R2.x").read_bytes() == BODY
    assert list((inbox.root / "tmp").iterdir()) == []
    assert clashes == [clashing]


def test_a_placed_message_is_one_file_with_one_name(inbox: LocalMaildir) -> None:
    inbox.commit([_verified(inbox, "new/1700.M1R1.x")])
    placed = inbox.root / "new/1700.M1R1.x"
    assert placed.stat().st_nlink == 1
    assert placed.stat().st_mode & 0o777 == 0o600


def test_only_our_leftovers_are_removed(inbox: LocalMaildir) -> None:
    (inbox.root / "tmp" / "1700.M1R1.x.onionpost-fetch").write_bytes(b"half")
    (inbox.root / "tmp" / "draft-by-neomutt").write_bytes(b"keep me")
    assert inbox.remove_leftovers() == 1
    assert [p.name for p in (inbox.root / "tmp").iterdir()] == ["draft-by-neomutt"]


def test_one_fetch_at_a_time(inbox: LocalMaildir) -> None:
    other = LocalMaildir(inbox.root)
    inbox.lock()
    with pytest.raises(BusyError):
        other.lock()
    inbox.close()
    other.lock()
    other.close()


def test_record_appends_loads_and_prunes(tmp_path: Path) -> None:
    record = FetchRecord(tmp_path)
    record.append({"a": Fingerprint(1, "1" * 64), "b": Fingerprint(2, "2" * 64)})
    record.append({"c": Fingerprint(3, "3" * 64)})
    with record.path.open("a") as handle:
        handle.write("d 4 4444")  # torn by a crash mid-append
    assert set(record.load()) == {"a", "b", "c"}
    record.prune({"b", "zzz"})
    assert record.load() == {"b": Fingerprint(2, "2" * 64)}


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "m"
    path.write_bytes(BODY)
    assert sha256_file(path) == Fingerprint(len(BODY), DIGEST)
