"""tor-connect: tor's SOCKS refusals explained, and the byte relay of the ProxyCommand."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from python_socks import ProxyError
from tests.support.net import free_port

from onionpost.exits import EX_TEMPFAIL, EX_UNAVAILABLE
from onionpost.fetch import client
from onionpost.fetch.ssh import SshCall
from onionpost.tor.proxy_command import explain, relay
from onionpost.tor.socks import refusal


def test_tor_extended_errors() -> None:
    # python-socks keeps RFC 1928 codes in error_code and only names tor's own ones
    code, text = explain(refusal(ProxyError("Invalid reply code: 0XF4")))
    assert code == EX_UNAVAILABLE
    assert text == ("onion client authorization missing: this machine's tor has no key for "
                    "it (SOCKS error 0xf4)")
    code, text = explain(refusal(ProxyError("Invalid reply code: 0XF0")))
    assert code == EX_TEMPFAIL and "descriptor not found" in text
    assert explain(refusal(ProxyError("Host unreachable", error_code=4))) == (
        EX_TEMPFAIL, "tor refused the connection: Host unreachable")


def test_relay_copies_both_ways_until_the_connection_closes() -> None:
    ours, theirs = socket.socketpair()
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    thread = threading.Thread(target=relay, args=(ours, stdin_r, stdout_w))
    thread.start()
    os.write(stdin_w, b"SSH-2.0-client\r\n")
    os.close(stdin_w)  # ssh is done sending: only half-closes
    assert theirs.recv(100) == b"SSH-2.0-client\r\n"
    assert theirs.recv(100) == b""
    theirs.sendall(b"SSH-2.0-server\r\n")
    theirs.close()
    thread.join(5)
    os.close(stdout_w)
    assert os.read(stdout_r, 100) == b"SSH-2.0-server\r\n"
    assert not thread.is_alive()
    for fd in (stdin_r, stdout_r):
        os.close(fd)
    ours.close()


def test_without_tor_it_exits_75_and_fetch_quotes_its_line(tmp_path: Path) -> None:
    socks_port = free_port()  # nothing listens there
    result = subprocess.run(
        [sys.executable, "-m", "onionpost", "tor-connect", "example.onion", "22"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(tmp_path), "ONIONPOST_TOR_SOCKS": f"127.0.0.1:{socks_port}"})
    assert result.returncode == EX_TEMPFAIL
    assert result.stderr == (f"onionpost tor-connect: tor's SOCKS port 127.0.0.1:{socks_port}"
                             " is not answering (ONIONPOST_TOR_SOCKS)\n")
    # ssh prints its own line after the ProxyCommand's; fetch says tor's reason, not ssh's
    ssh_stderr = result.stderr + "Connection closed by UNKNOWN port 65535\n"
    error = client._unreachable(SshCall("owner@example.onion"), 255, ssh_stderr)
    assert error.code == EX_TEMPFAIL
    assert error.message == (f"cannot reach owner@example.onion: tor-connect: tor's SOCKS port"
                             f" 127.0.0.1:{socks_port} is not answering (ONIONPOST_TOR_SOCKS)")
