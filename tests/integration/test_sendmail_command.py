"""The installed `onionpost-sendmail` script as a mail client runs it: exit codes and the
one stderr line per problem, and that nothing leaves when it must not."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from onionpost import onion

SENDMAIL = Path(sys.executable).parent / "onionpost-sendmail"
OURS = onion.from_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
BOB = onion.from_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
MESSAGE = f"From: me@{OURS}\nSubject: hi\n\nbody\n".encode()


@pytest.fixture
def socks_listener() -> Iterator[socket.socket]:
    """A listening socket where tor's SOCKS port would be: shows whether anything connected."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.2)
        yield listener


def connected(listener: socket.socket) -> bool:
    try:
        listener.accept()[0].close()
    except TimeoutError:
        return False
    return True


def run(argv: list[str], tmp_path: Path, stdin: bytes = MESSAGE,
        **env: str) -> subprocess.CompletedProcess[bytes]:
    environment = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
                   "ONIONPOST_DOMAIN": OURS, "ONIONPOST_SEND_RETRY_DELAYS": "0.1,0.1",
                   "ONIONPOST_ADDRESS_BOOK": str(tmp_path / "contacts"), **env}
    return subprocess.run([str(SENDMAIL), *argv], input=stdin, capture_output=True,
                          timeout=60, env=environment, check=False)


def text(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode()


@pytest.mark.parametrize(("recipient", "words"), [
    ("someone@example.org", "onionpost delivers only to .onion addresses"),
    ("someone@expyuzz4wqqyqhjn.onion", "v2 onion address"),
    (f"someone@{BOB[:5]}{'a' if BOB[5] != 'a' else 'b'}{BOB[6:]}", "wrong checksum"),
    ("nobody", "not in the address book"),
])
def test_bad_recipients_exit_67_and_nothing_leaves(recipient: str, words: str, tmp_path: Path,
                                                   socks_listener: socket.socket) -> None:
    port = socks_listener.getsockname()[1]
    result = run(["-oi", f"bob@{BOB}", recipient], tmp_path,
                 ONIONPOST_TOR_SOCKS=f"127.0.0.1:{port}")
    assert result.returncode == 67
    lines = text(result).splitlines()
    assert f"onionpost-sendmail: {recipient}: " in lines[0] and words in lines[0]
    assert f"bob@{BOB}: not sent" in lines[1]
    assert len(lines) == 2
    assert not connected(socks_listener)


def test_usage_errors_exit_64(tmp_path: Path) -> None:
    assert run(["-bs"], tmp_path).returncode == 64
    result = run(["-oi"], tmp_path)
    assert result.returncode == 64
    assert "no recipients" in text(result)


def test_no_sender_is_a_data_error(tmp_path: Path) -> None:
    result = run(["-oi", f"bob@{BOB}"], tmp_path, stdin=b"Subject: x\n\nbody\n",
                 ONIONPOST_DOMAIN="", ONIONPOST_ONION_HOSTNAME_FILE=str(tmp_path / "none"))
    assert result.returncode == 65
    assert "no From header, no -f was given" in text(result)


@pytest.mark.parametrize(("env", "words"), [
    ({"ONIONPOST_TOR_SOCKS": "nowhere"}, "ONIONPOST_TOR_SOCKS"),
    ({"ONIONPOST_SEND_RETRY_DELAYS": "soon"}, "ONIONPOST_SEND_RETRY_DELAYS"),
])
def test_bad_configuration_exits_78_with_one_line(env: dict[str, str], words: str,
                                                  tmp_path: Path) -> None:
    result = run(["-oi", f"bob@{BOB}"], tmp_path, **env)  # type: ignore[arg-type]  # names of variables, never stdin
    assert result.returncode == 78
    assert text(result).count("\n") == 1 and words in text(result)


def test_a_broken_address_book_exits_78(tmp_path: Path) -> None:
    (tmp_path / "contacts").write_text("frank frank@example.org\n")
    result = run(["-oi", f"bob@{BOB}"], tmp_path)
    assert result.returncode == 78
    assert "line 1" in text(result) and "Traceback" not in text(result)


def test_help(tmp_path: Path) -> None:
    result = run(["--help"], tmp_path)
    assert result.returncode == 0
    assert b"usage: onionpost-sendmail" in result.stdout
