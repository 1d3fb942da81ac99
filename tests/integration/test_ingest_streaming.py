"""DATA streamed to tmp/: big messages stored byte for byte, every failure mid-stream leaves
nothing behind, and ingest's memory does not grow with the messages it is receiving."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.integration.conftest import RCPT, files_in, split_trace, stored_bodies
from tests.integration.test_ingest_durability import tiny_disk  # noqa: F401 (a fixture)
from tests.support.net import wait_for
from tests.support.servers import IngestProcess
from tests.support.smtp import RawSMTP, session_until_data
from tests.support.unfinished_data import CHUNK_LINE, UnfinishedData, memory_kb

MB = 1_000_000
SMALL = b"Subject: small\r\n\r\nok\r\n"


LINES = (bytes(range(32, 127)) + b"\r\n.starts with a dot\r\n.\r\nbare\ncr\rhere\r\n"
         + bytes(range(128, 256)) + b"\r\n")


def big_message(size: int) -> bytes:
    """About `size` bytes of lines that need dot-stuffing, bare CR and LF, a line of just
    '.', 8-bit bytes."""
    unit = b"".join(b"line %03d " % number + LINES for number in range(1000))
    message = (b"Subject: big\r\n\r\n" + unit * (size // len(unit) + 1))[:size]
    return message[:message.rfind(b"\r\n") + 2]


def raw_content(size: int) -> bytes:
    """Content to send as is (no line that needs dot-stuffing)."""
    return b"Subject: raw\r\n\r\n" + CHUNK_LINE * (size // len(CHUNK_LINE))


def ingest_tmp(ingest: IngestProcess) -> list[Path]:
    return files_in(ingest.maildir / "tmp")


@pytest.mark.parametrize("fsync", ["group", "file"])
def test_big_messages_are_stored_byte_for_byte_with_their_true_size(
        start_ingest: Callable[..., IngestProcess], fsync: str) -> None:
    ingest = start_ingest(fsync=fsync, max_message_size=20 * MB)
    messages = [big_message(size) for size in (65_000, 70_000, 3 * MB, 12 * MB)]
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=60) as client:
        for message in messages:
            assert client.sendmail("big@example.org", [RCPT], message) == {}
    assert sorted(stored_bodies(ingest), key=len) == messages
    for path in ingest.messages():
        trace, _ = split_trace(path.read_bytes())
        assert trace.startswith(b"Return-Path: <big@example.org>\r\nReceived: by ")
        assert path.name.endswith(f",S={path.stat().st_size}")
    assert ingest_tmp(ingest) == []


def start_big_data(ingest: IngestProcess, size: int) -> RawSMTP:
    """A session in DATA that has sent `size` bytes of content, with no end, once ingest
    has begun writing it to tmp/."""
    client = RawSMTP(ingest.port, timeout=60)
    client.greeting()
    session_until_data(client, RCPT)
    client.send(raw_content(size))
    wait_for(lambda: ingest_tmp(ingest), what="the message to spill into tmp/")
    return client


def test_a_client_gone_mid_data_leaves_nothing_and_holds_no_quota(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(max_messages=1, max_bytes=3 * MB)
    for _ in range(3):
        start_big_data(ingest, 2 * MB).close()
        wait_for(lambda: not ingest_tmp(ingest), what="the tmp/ file to be removed")
    assert ingest.messages() == []
    # The whole quota (one message, 3 MB) is still free.
    message = big_message(2 * MB)
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=60) as client:
        assert client.sendmail("a@example.org", [RCPT], message) == {}
    assert stored_bodies(ingest) == [message]


def test_too_big_mid_stream_drops_the_tmp_file_and_is_refused_after_the_end(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(max_message_size=MB)
    with start_big_data(ingest, MB // 2) as client:
        client.send(raw_content(MB))  # past the limit: the file goes before the end comes
        wait_for(lambda: not ingest_tmp(ingest), what="the tmp/ file to be removed")
        client.send(b"\r\n.\r\n")
        reply = client.reply()
        assert reply is not None and (reply.code, reply.enhanced) == (552, "5.3.4")
        assert client.command(b"MAIL FROM:<a@example.org>").code == 250
    assert ingest.messages() == [] and ingest_tmp(ingest) == []


def test_an_over_long_line_mid_stream_drops_the_tmp_file(ingest: IngestProcess) -> None:
    with start_big_data(ingest, MB // 2) as client:
        client.send(b"z" * 200_000)
        wait_for(lambda: not ingest_tmp(ingest), what="the tmp/ file to be removed")
        client.send(b"\r\n.\r\n")
        reply = client.reply()
        assert reply is not None and (reply.code, reply.enhanced) == (500, "5.5.2")
    assert ingest.messages() == [] and ingest_tmp(ingest) == []


def test_a_spilled_message_over_the_quota_is_refused_and_removed(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(max_bytes=MB)
    with start_big_data(ingest, 2 * MB) as client:
        client.send(b".\r\n")
        reply = client.reply()
        assert reply is not None and (reply.code, reply.enhanced) == (452, "4.2.2")
    assert ingest.messages() == []
    wait_for(lambda: not ingest_tmp(ingest), what="the tmp/ file to be removed")


def test_sigterm_mid_data_leaves_nothing_in_tmp(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest()
    with start_big_data(ingest, 2 * MB) as client:
        assert ingest.stop() == 0
        reply = client.reply()
        assert reply is not None and (reply.code, reply.enhanced) == (421, "4.3.2")
    assert ingest.messages() == [] and ingest_tmp(ingest) == []


def test_a_full_disk_mid_stream_answers_452_and_keeps_nothing(
        tiny_disk: Path, start_ingest: Callable[..., IngestProcess]) -> None:  # noqa: F811
    ingest = start_ingest(maildir=tiny_disk)
    with RawSMTP(ingest.port, timeout=60) as client:
        client.greeting()
        session_until_data(client, RCPT)
        client.send(raw_content(3 * MB) + b".\r\n")  # the disk has 1 MB
        reply = client.reply()
        assert reply is not None and (reply.code, reply.enhanced) == (452, "4.3.1")
    assert ingest.messages() == []
    wait_for(lambda: not ingest_tmp(ingest), what="the tmp/ file to be removed")
    assert "event=write_failed error=ENOSPC" in ingest.logs()
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=30) as client:
        assert client.sendmail("a@example.org", [RCPT], SMALL) == {}
    assert stored_bodies(ingest) == [SMALL]


def test_memory_stays_bounded_with_30_sessions_of_9_mb_unfinished_data(
        start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(max_message_size=10 * MB, max_bytes="1GB", max_sessions=40,
                          circuit_max_sessions=40, circuit_messages_per_minute=100)
    assert ingest.process is not None
    attack = UnfinishedData(ingest.port, RCPT, sessions=30, size=9 * MB).open()
    try:
        attack.send()
        held_kb = memory_kb(ingest.process.pid)
        # Before streaming: 333 MB, the messages in memory. Now: a bounded buffer each.
        assert held_kb < 200_000, f"ingest holds {held_kb} KiB"
        assert len(ingest_tmp(ingest)) == 30
        replies = attack.finish()
    finally:
        attack.close()
    assert [reply[:3] for reply in replies] == [b"250"] * 30
    peak_kb = memory_kb(ingest.process.pid, "VmHWM")
    assert peak_kb < 250_000, f"ingest's peak: {peak_kb} KiB"
    assert len(ingest.messages()) == 30 and ingest_tmp(ingest) == []
