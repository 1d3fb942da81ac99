"""`onionpost pgp-key import` as the compose stack runs it (stdin -> the file ingest reads),
checked as ingest checks a key, and rotation: import again, restart ingest."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.integration.conftest import RCPT
from tests.integration.test_ingest_pgp import decrypted, encrypted_part
from tests.support.gpg import GnuPG
from tests.support.servers import IngestProcess

from onionpost.pgp_key import MAX_RECIPIENTS


def pgp_key(*args: str, data: bytes = b"", key: Path | None = None
            ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ONIONPOST_PGP_KEY": str(key) if key else ""}
    result = subprocess.run([sys.executable, "-m", "onionpost", "pgp-key", *args],
                            input=data, env=env, capture_output=True, timeout=60)
    return subprocess.CompletedProcess(result.args, result.returncode,
                                       result.stdout.decode(), result.stderr.decode())


@pytest.fixture(scope="module")
def gpg(tmp_path_factory: pytest.TempPathFactory) -> GnuPG:
    keys = GnuPG(tmp_path_factory.mktemp("gnupg") / "home")
    keys.make_key("first@example.onion")
    keys.make_key("second@example.onion")
    keys.make_key("signonly@example.onion", "ed25519", "sign")
    many = keys.make_key("many@example.onion")
    for _ in range(MAX_RECIPIENTS):  # one more than allowed: every message ~9 times the work
        keys.run("--quick-add-key", many, "cv25519", "encr", "never")
    return keys


def test_import_stores_a_checked_key_and_show_names_it(gpg: GnuPG, tmp_path: Path) -> None:
    target = tmp_path / "owner.asc"
    binary = gpg.export("first@example.onion", armor=False)
    result = pgp_key("import", data=binary, key=target)
    assert result.returncode == 0, result.stderr
    assert target.read_bytes().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    fingerprint = pgp_key("show", key=target).stdout.strip()
    assert len(fingerprint) == 40 and fingerprint in result.stdout
    assert oct(target.stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize(("what", "says"), [
    ("signonly@example.onion", "cannot encrypt"),
    ("secret", "holds a secret key"),
    ("nothing", "not an OpenPGP public key"),
    ("many@example.onion", "subkeys that may encrypt"),
    ("huge", "more than 1000000 bytes"),
])
def test_import_refuses_an_unfit_key_and_keeps_the_old_one(
        gpg: GnuPG, tmp_path: Path, what: str, says: str) -> None:
    target = tmp_path / "owner.asc"
    assert pgp_key("import", data=gpg.export("first@example.onion"), key=target).returncode == 0
    before = target.read_bytes()
    data = {"secret": gpg.export_secret("first@example.onion"), "nothing": b"hello\n",
            "huge": b"\x99" * 1_000_001}.get(what) or gpg.export(what)
    result = pgp_key("import", data=data, key=target)
    assert result.returncode == os.EX_DATAERR
    assert result.stderr.count("\n") == 1 and says in result.stderr
    assert target.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["owner.asc"]


def test_without_a_target_import_says_where_to_put_it(gpg: GnuPG) -> None:
    result = pgp_key("import", data=gpg.export("first@example.onion"))
    assert result.returncode == os.EX_CONFIG and "ONIONPOST_PGP_KEY" in result.stderr


def test_rotation_import_again_then_restart_ingest(
        start_ingest: Callable[..., IngestProcess], gpg: GnuPG, tmp_path: Path) -> None:
    target = tmp_path / "keys" / "owner.asc"
    target.parent.mkdir()
    assert pgp_key("import", data=gpg.export("first@example.onion"), key=target).returncode == 0
    ingest = start_ingest(pgp_key=target)
    sent = [b"Subject: one\r\n\r\nfirst\r\n", b"Subject: two\r\n\r\nsecond\r\n"]
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=60) as client:
        client.sendmail("a@example.org", [RCPT], sent[0])
    assert pgp_key("import", data=gpg.export("second@example.onion"), key=target).returncode == 0
    ingest.stop()
    ingest = start_ingest(maildir=ingest.maildir, pgp_key=target)  # the restart
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=60) as client:
        client.sendmail("a@example.org", [RCPT], sent[1])
    by_content = {decrypted(gpg, path.read_bytes()): path for path in ingest.messages()}
    assert sorted(by_content) == sorted(sent)
    for content, uid in zip(sent, ("first@example.onion", "second@example.onion"), strict=True):
        packets = gpg.run("--list-packets", data=encrypted_part(by_content[content].read_bytes()))
        assert f"keyid {_encryption_subkey(gpg, uid)}" in packets.stdout.decode()


def _encryption_subkey(gpg: GnuPG, uid: str) -> str:
    """The key id gpg prints in --list-packets for the key's encryption subkey."""
    for line in gpg.run("--with-colons", "--list-keys", uid).stdout.decode().splitlines():
        fields = line.split(":")
        if fields[0] == "sub" and "e" in fields[11]:
            return fields[4]
    raise LookupError("no encryption subkey")
