"""Client and server of the fetch protocol talking over pipes in this process (no ssh):
the whole loop, including a run that finishes what a killed one left."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from onionpost import maildir
from onionpost.fetch.inbox import LocalMaildir, MismatchError
from onionpost.fetch.progress import Outcome
from onionpost.fetch.serve import Server, list_maildir
from onionpost.fetch.session import Session
from onionpost.fetch.transfer import Fetcher, Options


@contextmanager
def connected(server_maildir: Path) -> Iterator[Session]:
    to_server_r, to_server_w = os.pipe()
    to_client_r, to_client_w = os.pipe()
    replies = os.fdopen(to_client_w, "wb")
    server = Server(server_maildir, to_server_r, replies)
    thread = threading.Thread(target=server.run)
    thread.start()
    client_in, client_out = os.fdopen(to_client_r, "rb"), os.fdopen(to_server_w, "wb")
    try:
        yield Session(client_in, client_out)
    finally:
        client_out.close()
        thread.join(10)
        replies.close()
        client_in.close()
        os.close(to_server_r)


@pytest.fixture
def local(tmp_path: Path) -> LocalMaildir:
    inbox = LocalMaildir(tmp_path / "local")
    inbox.create()
    return inbox


def _run(server_dir: Path, local: LocalMaildir, **options: object) -> Outcome:
    with connected(server_dir) as session:
        return Fetcher(session, local, Options(**options)).run()  # type: ignore[arg-type]  # each test's own options


def _messages(directory: Path, count: int) -> dict[str, bytes]:
    maildir.ensure(directory)
    sent = {}
    for n in range(count):
        body = os.urandom(100 + n)
        name = maildir.file_name(maildir.new_queue_id(), len(body))
        (directory / "new" / name).write_bytes(body)
        sent[name] = body
    return sent


def _local(local: LocalMaildir) -> dict[str, bytes]:
    return {path.name.partition(":")[0]: path.read_bytes()
            for path in local.present().values()}


def _assert_all_moved(server_dir: Path, local: LocalMaildir, sent: dict[str, bytes]) -> None:
    assert _local(local) == sent
    assert list_maildir(server_dir) == ([], 0)


def test_fetch_moves_everything(tmp_path: Path, local: LocalMaildir) -> None:
    sent = _messages(tmp_path / "server", 150)  # more than one batch

    outcome = _run(tmp_path / "server", local)

    assert (outcome.fetched, outcome.removed) == (150, 0)
    _assert_all_moved(tmp_path / "server", local, sent)


def test_a_message_here_but_still_there_is_only_deleted(tmp_path: Path,
                                                        local: LocalMaildir) -> None:
    """What a run killed between our rename and the server's delete leaves behind."""
    sent = _messages(tmp_path / "server", 3)
    name = sorted(sent)[1]
    (local.root / "cur" / f"{name}:2,S").write_bytes(sent[name])  # and the owner read it

    outcome = _run(tmp_path / "server", local)

    assert (outcome.fetched, outcome.removed) == (2, 1)
    _assert_all_moved(tmp_path / "server", local, sent)


def test_a_different_copy_here_stops_the_run_and_deletes_nothing(
        tmp_path: Path, local: LocalMaildir) -> None:
    sent = _messages(tmp_path / "server", 2)
    name = sorted(sent)[0]
    (local.root / "new" / name).write_bytes(b"not the same message")

    with pytest.raises(MismatchError, match="differs from ours"):
        _run(tmp_path / "server", local)
    assert len(list_maildir(tmp_path / "server")[0]) == 2


def test_skipped_names_stay_on_the_server(tmp_path: Path, local: LocalMaildir) -> None:
    _messages(tmp_path / "server", 1)
    (tmp_path / "server" / "new" / "weird name with spaces").write_bytes(b"x")
    os.symlink("/etc/passwd", tmp_path / "server" / "new" / "1700.M1R1.link")

    outcome = _run(tmp_path / "server", local)

    assert (outcome.fetched, outcome.skipped) == (1, 2)
    assert sorted(os.listdir(tmp_path / "server" / "new")) == [
        "1700.M1R1.link", "weird name with spaces"]


def test_a_server_side_io_error_is_one_err_line_without_paths(tmp_path: Path) -> None:
    maildir.ensure(tmp_path / "server")
    directory = tmp_path / "server" / "new" / "1700.M1R1.onionpost"
    directory.mkdir()  # a DEL for it fails in unlink(2), whoever we run as
    requests_r, requests_w = os.pipe()
    replies_r, replies_w = os.pipe()
    os.write(requests_w, f"DEL new/1700.M1R1.onionpost {directory.stat().st_size}\n".encode())
    os.close(requests_w)
    with os.fdopen(replies_w, "wb") as replies:
        code = Server(tmp_path / "server", requests_r, replies).run()
    said = os.read(replies_r, 4096).decode()

    assert code == 74
    assert said.splitlines()[1].startswith("ERR server I/O error: ")
    assert str(tmp_path) not in said
    assert directory.is_dir()
