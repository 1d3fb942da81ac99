"""Which ingest replies may wait for the rest of a pipelined group, and the transport that
writes held replies before it closes."""

from __future__ import annotations

import pytest

from onionpost.ingest.pipelining import RepliesFirst, may_wait


@pytest.mark.parametrize("reply", [b"250 2.1.0 OK", b"550 5.7.1 Relaying denied",
                                   b"250 2.0.0 OK queued as X", b"503 5.5.1 Need MAIL command"])
def test_an_ordinary_reply_waits_only_while_the_next_command_is_here(reply: bytes) -> None:
    assert may_wait(reply, next_command_waiting=True)
    assert not may_wait(reply, next_command_waiting=False)


@pytest.mark.parametrize("reply", [b"220 x.onion ESMTP", b"220 2.0.0 Ready to start TLS",
                                   b"354 End data with <CR><LF>.<CR><LF>", b"221 2.0.0 Bye",
                                   b"421 4.3.2 Mailbox paused, try again later"])
def test_replies_the_client_waits_for_or_that_end_the_session_never_wait(reply: bytes) -> None:
    assert not may_wait(reply, next_command_waiting=True)


def test_lines_of_a_multi_line_reply_wait_for_its_last_line() -> None:
    assert may_wait(b"250-x.onion", next_command_waiting=False)
    assert not may_wait(b"250 HELP", next_command_waiting=False)


class Transport:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def close(self) -> None:
        self.log.append("close")

    def is_closing(self) -> bool:
        return False


def test_closing_writes_the_held_replies_first() -> None:
    log: list[str] = []
    wrapped = RepliesFirst(Transport(log), lambda: log.append("held replies"))
    assert wrapped.is_closing() is False  # everything else is the transport's own
    wrapped.close()
    assert log == ["held replies", "close"]
