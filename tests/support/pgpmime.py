"""Checking PGP/MIME messages in tests with gpg: the signature of a multipart/signed one."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.gpg import GnuPG


def verify_signed(gpg: GnuPG, raw: bytes, workdir: Path) -> bytes:
    """gpg's status lines for a multipart/signed message (RFC 3156): the first part's bytes as
    they stand (CRLF, as sent) against the detached signature in the second."""
    boundary = re.search(rb'boundary="?([^";\r\n]+)', raw)
    assert boundary, raw[:500]
    parts = raw.split(b"\r\n--" + boundary.group(1))
    signed = parts[1].split(b"\r\n", 1)[1]
    signature = parts[2].split(b"\r\n\r\n", 1)[1]
    (workdir / "part").write_bytes(signed)
    (workdir / "part.sig").write_bytes(signature)
    result = gpg.run("--status-fd", "1", "--verify", str(workdir / "part.sig"),
                     str(workdir / "part"), check=False)
    return result.stdout


def armored_message(raw: bytes) -> bytes:
    """The `-----BEGIN PGP MESSAGE-----` block of a multipart/encrypted message."""
    start = raw.index(b"-----BEGIN PGP MESSAGE-----")
    end = raw.index(b"-----END PGP MESSAGE-----", start) + len(b"-----END PGP MESSAGE-----")
    return raw[start:end] + b"\r\n"
