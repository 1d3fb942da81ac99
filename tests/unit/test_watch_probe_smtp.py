"""The probe's SMTP exchange against hostile or broken greeters (a socket pair, no network)."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from onionpost.watch.probe import ProbeFailedError, smtp_hello

ONION = "lux6itkmc2qhczbli6jwke4cmcemn7dldwhidea3nqfucfdrsjkvldyd.onion"


def exchange(server_bytes: bytes, close: bool = True) -> list[bytes]:
    """Run smtp_hello against a peer that sends server_bytes; returns what the probe sent."""
    ours, theirs = socket.socketpair()
    received: list[bytes] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            theirs.sendall(server_bytes)
        theirs.settimeout(2)
        try:
            while chunk := theirs.recv(4096):
                received.append(chunk)
        except OSError:
            pass
        if close:
            theirs.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        smtp_hello(ours, ONION, timeout=1)
    finally:
        ours.close()
        thread.join()
        theirs.close()
    return received


def test_a_good_server_gets_ehlo_and_quit() -> None:
    sent = exchange(f"220 {ONION} ESMTP\r\n250-{ONION}\r\n250 SIZE 1\r\n221 bye\r\n".encode())
    assert b"".join(sent) == f"EHLO {ONION}\r\nQUIT\r\n".encode()


@pytest.mark.parametrize("greeting", [
    b"220 someone.else ESMTP\r\n", b"421 busy\r\n", b"", b"not smtp at all\r\n",
    b"220-" + ONION.encode() + b"\r\n" * 1,  # a continuation, then the peer closes
    b"220-x\r\n" * 500,  # endless continuation lines
    b"x" * 100_000,  # one line without end
])
def test_a_wrong_or_hostile_greeting_fails_the_banner_stage(greeting: bytes) -> None:
    with pytest.raises(ProbeFailedError) as failure:
        exchange(greeting)
    assert failure.value.stage == "banner"


def test_a_silent_server_times_out_as_banner() -> None:
    with pytest.raises(ProbeFailedError) as failure:
        exchange(b"", close=False)
    assert failure.value.stage == "banner"


def test_ehlo_refused_fails_the_banner_stage() -> None:
    with pytest.raises(ProbeFailedError, match="EHLO answered 502"):
        exchange(f"220 {ONION} ESMTP\r\n502 no\r\n".encode())
