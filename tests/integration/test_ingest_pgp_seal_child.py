"""Big messages sealed in a child process (ingest/seal_child.py) with a real ingest: gpg gives
back the exact bytes sent, the child gets the message's AES key on stdin only, and every way
the child can fail (killed, stopped past the DATA timeout, an altered spill, a hang-up) ends
in 451 or a closed session with nothing in new/ and tmp/ emptied."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from tests.integration.conftest import RCPT, files_in
from tests.integration.test_ingest_pgp import (  # noqa: F401 (fixtures)
    MB,
    decrypted,
    gpg,
    message,
    nothing_in_clear,
    only_stored,
    owner_key,
)
from tests.support.gpg import GnuPG
from tests.support.net import wait_for
from tests.support.servers import IngestProcess
from tests.support.smtp import RawSMTP, session_until_data
from tests.support.unfinished_data import CHUNK_LINE

CHILD_MODULE = b"onionpost.ingest.seal_child"


def big_message(size: int = 10 * MB) -> bytes:
    return message(CHUNK_LINE * (size // len(CHUNK_LINE)))


def seal_children(pid: int) -> list[int]:
    """The seal children of an ingest process (once they have exec'd)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                if CHILD_MODULE in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
    return found


def pid_of(ingest: IngestProcess) -> int:
    assert ingest.process is not None
    return ingest.process.pid


def the_seal_child(ingest: IngestProcess) -> int:
    [child] = wait_for(lambda: seal_children(pid_of(ingest)), interval=0.002,
                       what="a seal child")
    return child


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped (before or while read)
        return True


def end_data(ingest: IngestProcess, sent: bytes) -> RawSMTP:
    client = RawSMTP(ingest.port, timeout=120)
    client.greeting()
    session_until_data(client, RCPT)
    client.send(sent + b".\r\n")
    return client


def start(start_ingest: Callable[..., IngestProcess], owner_key: Path,  # noqa: F811
          **settings: object) -> IngestProcess:
    return start_ingest(pgp_key=owner_key, max_message_size=12 * MB, **settings)


def test_a_10_mb_message_is_sealed_by_a_child_that_gets_its_key_on_stdin(
        start_ingest: Callable[..., IngestProcess], owner_key: Path,  # noqa: F811
        gpg: GnuPG) -> None:  # noqa: F811
    ingest = start(start_ingest, owner_key)
    sent = big_message()
    with end_data(ingest, sent) as client:
        child = the_seal_child(ingest)
        argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[:-1]
        environ = Path(f"/proc/{child}/environ").read_bytes()
        reply = client.reply()
        assert reply is not None and reply.code == 250, reply
    # Nothing but the two tmp/ paths in argv; the environment is ingest's own, unchanged:
    # the AES key of the message can be in neither.
    tmp = str(ingest.maildir / "tmp")
    assert argv[:3] == [sys.executable.encode(), b"-m", CHILD_MODULE] and len(argv) == 6
    assert argv[3].startswith(tmp.encode() + b"/") and argv[4] == argv[3] + b".pgp"
    assert argv[5] == str(pid_of(ingest)).encode()
    assert environ == Path(f"/proc/{pid_of(ingest)}/environ").read_bytes()
    assert files_in(ingest.maildir / "tmp") == []
    assert decrypted(gpg, only_stored(ingest)) == sent
    assert gone(child)


def answered_451_and_nothing_kept(ingest: IngestProcess, client: RawSMTP) -> None:
    reply = client.reply()
    assert reply is not None and (reply.code, reply.enhanced) == (451, "4.3.0"), reply
    assert ingest.messages() == []
    nothing_in_clear(ingest)  # tmp/ emptied, no marker anywhere
    assert "event=encrypt_failed" in ingest.logs()


def test_a_seal_child_killed_mid_seal_gets_451_and_nothing_kept(
        start_ingest: Callable[..., IngestProcess], owner_key: Path) -> None:  # noqa: F811
    ingest = start(start_ingest, owner_key)
    with end_data(ingest, big_message()) as client:
        os.kill(the_seal_child(ingest), signal.SIGKILL)
        answered_451_and_nothing_kept(ingest, client)
    assert "exit -9" in ingest.logs()


def test_an_altered_spill_gets_451_and_nothing_kept(
        start_ingest: Callable[..., IngestProcess], owner_key: Path) -> None:  # noqa: F811
    """Someone with write access to tmp/ changes the AES records while the message arrives:
    the child's AES-GCM refuses them, nothing else is decrypted or stored."""
    ingest = start(start_ingest, owner_key)
    sent = big_message(4 * MB)
    with RawSMTP(ingest.port, timeout=120) as client:
        client.greeting()
        session_until_data(client, RCPT)
        client.send(sent[:len(sent) // 2])
        [spill] = wait_for(lambda: [path for path in files_in(ingest.maildir / "tmp")
                                    if path.stat().st_size > MB], what="a spill of 1 MB")
        with spill.open("r+b") as file:
            file.seek(500_000)
            file.write(b"garbage" * 100)
        client.send(sent[len(sent) // 2:] + b".\r\n")
        answered_451_and_nothing_kept(ingest, client)
    assert "seal child bad-spill" in ingest.logs()


def test_a_stopped_seal_child_is_killed_at_the_data_timeout(
        start_ingest: Callable[..., IngestProcess], owner_key: Path) -> None:  # noqa: F811
    ingest = start(start_ingest, owner_key, data_timeout=5)
    with end_data(ingest, big_message()) as client:
        child = the_seal_child(ingest)
        os.kill(child, signal.SIGSTOP)  # hangs: the store's DATA timeout runs out
        reply = client.reply()
        assert reply is not None and (reply.code, reply.enhanced) == (421, "4.4.2"), reply
        wait_for(lambda: gone(child), what="the seal child to be killed")
    assert ingest.messages() == []
    nothing_in_clear(ingest)


def test_a_hang_up_mid_seal_kills_the_child_and_keeps_nothing(
        start_ingest: Callable[..., IngestProcess], owner_key: Path) -> None:  # noqa: F811
    ingest = start(start_ingest, owner_key)
    client = end_data(ingest, big_message())
    child = the_seal_child(ingest)
    os.kill(child, signal.SIGSTOP)  # still sealing when the session goes
    client.close()
    wait_for(lambda: gone(child), what="the seal child to be killed")
    assert ingest.messages() == []
    nothing_in_clear(ingest)
    with end_data(ingest, big_message(2 * MB)) as client:  # the next one is sealed
        reply = client.reply()
        assert reply is not None and reply.code == 250, reply
    assert len(ingest.messages()) == 1


def test_a_seal_child_does_not_outlive_a_killed_ingest(
        start_ingest: Callable[..., IngestProcess], owner_key: Path) -> None:  # noqa: F811
    ingest = start(start_ingest, owner_key)
    with end_data(ingest, big_message()):
        child = the_seal_child(ingest)
        # Its imports (pysequoia first) start once it has asked to die with ingest.
        wait_for(lambda: b"pysequoia" in Path(f"/proc/{child}/maps").read_bytes(),
                 interval=0.001, what="the seal child's imports")
        os.kill(child, signal.SIGSTOP)  # would wait forever
        os.kill(pid_of(ingest), signal.SIGKILL)
        wait_for(lambda: gone(child), what="the seal child to die with ingest")
    assert ingest.messages() == []
