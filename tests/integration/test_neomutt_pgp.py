"""neomutt with `onionpost neomutt-config` and the owner's key from `onionpost pgp init`, in
tmux as the owner types: it reads mail the real ingest stored encrypted (ONIONPOST_PGP_KEY),
showing the body, the real Subject and the sender's good signature, and it sends signed mail
(encrypted to a contact whose key `contacts add --key` took). The receiver is a real ingest
behind a SOCKS5 relay (tests/support/slow_relay.py, no delay) standing in for tor."""

from __future__ import annotations

import email
import email.policy
import shutil
import smtplib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.gpg import GnuPG
from tests.support.net import wait_for
from tests.support.pgpmime import armored_message, verify_signed
from tests.support.servers import IngestProcess
from tests.support.slow_relay import SlowRelay
from tests.support.tmux import Terminal, neomutt_send

from onionpost import maildir, onion

pytestmark = pytest.mark.skipif(
    not all(map(shutil.which, ("neomutt", "tmux", "gpg"))),
    reason="neomutt, tmux or gpg is not installed (make system-deps)")

BIN = Path(sys.executable).parent
OURS = onion.from_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
THEIRS = onion.from_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
SUBJECT, BODY = "the real subject 7d1f", "the secret body 93ac"


class Owner:
    """The owner's laptop: HOME with ~/mail, a throw-away GNUPGHOME, a passphrase-less key."""

    def __init__(self, home: Path) -> None:
        self.home = home
        for box in ("inbox", "sent", "drafts", "trash"):
            maildir.ensure(home / "mail" / box)
        (home / ".gnupg").mkdir(mode=0o700)
        self.env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(home), "TERM": "xterm",
                    "GNUPGHOME": str(home / ".gnupg"), "ONIONPOST_DOMAIN": OURS,
                    "ONIONPOST_ADDRESS_BOOK": str(home / "contacts")}
        self.gpg = GnuPG(home / ".gnupg")
        self.terminal: Terminal | None = None

    def onionpost(self, *argv: str) -> str:
        result = subprocess.run([str(BIN / "onionpost"), *argv], capture_output=True,
                                text=True, timeout=300, check=False, cwd=self.home, env=self.env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def neomutt(self, extra: str = "") -> Terminal:
        config = self.home / "neomutt.config"
        config.write_text(self.onionpost("neomutt-config") + extra)
        self.terminal = Terminal(f"neomutt -F {config}", self.env)
        self.terminal.wait_for("inbox", "neomutt's index")
        return self.terminal

    def stop(self) -> None:
        if self.terminal:
            self.terminal.close()
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=self.env, check=False)


@pytest.fixture
def owner(tmp_path: Path) -> Iterator[Owner]:
    laptop = Owner(tmp_path / "home")
    laptop.onionpost("pgp", "init", "--no-passphrase", "--out", str(tmp_path / "owner.asc"))
    yield laptop
    laptop.stop()


@pytest.fixture
def frank(tmp_path: Path) -> Iterator[GnuPG]:
    keys = GnuPG(tmp_path / "frank-gnupg")
    yield keys
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], check=False,
                   env={"GNUPGHOME": str(keys.home), "PATH": "/usr/bin:/bin"})


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def signed_letter(alice: GnuPG) -> bytes:
    """alice's PGP/MIME signed message (RFC 3156) to the owner, as her client would send it."""
    part = f"Content-Type: text/plain; charset=us-ascii\r\n\r\n{BODY}\r\n".encode()
    signature = alice.run("--armor", "--digest-algo", "SHA256", "--local-user",
                          f"alice@{THEIRS}", "--detach-sign", data=part).stdout
    return (f"From: alice@{THEIRS}\r\nTo: anon@{OURS}\r\nSubject: {SUBJECT}\r\n"
            "Date: Mon, 30 Nov 2026 18:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/signed; micalg=pgp-sha256;\r\n'
            ' protocol="application/pgp-signature"; boundary="b1"\r\n\r\n'
            "--b1\r\n").encode() + part + (
            b"\r\n--b1\r\nContent-Type: application/pgp-signature\r\n\r\n" + signature
            + b"\r\n--b1--\r\n")


def test_neomutt_shows_body_real_subject_and_signature_of_mail_stored_encrypted(
        owner: Owner, frank: GnuPG, start_ingest: Callable[..., IngestProcess],
        tmp_path: Path) -> None:
    alice = frank  # another person's keyring: here alice's
    alice.make_key(f"alice@{THEIRS}")
    owner.gpg.run("--import", data=alice.export(f"alice@{THEIRS}"))
    ingest = start_ingest(maildir=owner.home / "mail" / "inbox", domain=OURS,
                          pgp_key=tmp_path / "owner.asc")
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=30) as client:
        client.sendmail(f"alice@{THEIRS}", [f"anon@{OURS}"], signed_letter(alice))
    [stored] = ingest.messages()
    assert SUBJECT.encode() not in stored.read_bytes()  # what the server has: "..."
    assert b"\r\nSubject: ...\r\n" in stored.read_bytes()

    terminal = owner.neomutt()
    index = terminal.wait_for("alice@", "the message in the index")
    assert SUBJECT not in index  # nothing decrypted yet
    terminal.keys("Enter")
    pager = terminal.wait_for(BODY, "the decrypted body")
    assert f"Subject: {SUBJECT}" in pager, pager
    assert f"Good signature from: alice@{THEIRS}" in pager, pager
    terminal.keys("q")
    terminal.wait_for(SUBJECT, "the real Subject in the index")
    terminal.keys("q")
    wait_for(lambda: "NeoMutt" not in terminal.screen(), what="neomutt to quit")
    for path in files_under(owner.home / "mail"):  # read, moved to cur/: still sealed
        assert SUBJECT.encode() not in path.read_bytes(), path
        assert BODY.encode() not in path.read_bytes(), path


def stored_messages(ingest: IngestProcess) -> dict[str, email.message.Message]:
    found = (email.message_from_bytes(path.read_bytes()) for path in ingest.messages())
    return {str(message["To"]): message for message in found}


def test_neomutt_signs_every_message_and_encrypts_to_a_contact_with_a_key(
        owner: Owner, frank: GnuPG, start_ingest: Callable[..., IngestProcess],
        tmp_path: Path) -> None:
    receiver = start_ingest(maildir=tmp_path / "theirs" / "inbox", domain=THEIRS)
    # His key names another address: only the config's crypt-hook (quoted, an anchored
    # regex) binds it to frank@, neomutt's opportunistic search would not find it.
    frank.make_key("Frank <frank@elsewhere.example>")
    (tmp_path / "frank.asc").write_bytes(frank.export("frank@elsewhere.example"))
    owner.onionpost("contacts", "add", "frank", f"frank@{THEIRS}", "--key",
                    str(tmp_path / "frank.asc"))
    owner.onionpost("contacts", "add", "bob", f"bob@{THEIRS}")  # no key: signed only
    editor = tmp_path / "editor"
    editor.write_text(f'#!/bin/sh\necho "{BODY}" >> "$1"\n')
    editor.chmod(0o755)
    fingerprint = owner.gpg.run("--with-colons", "--list-secret-keys").stdout.decode()
    with SlowRelay(0.0, {THEIRS: receiver.port}) as relay:
        owner.env["ONIONPOST_TOR_SOCKS"] = f"127.0.0.1:{relay.port}"
        terminal = owner.neomutt(f'set editor = "{editor}"\n')
        for name in ("bob", "frank"):
            compose = neomutt_send(terminal, name, f"{SUBJECT} to {name}")
            assert "Sign" in compose, compose
    messages = stored_messages(receiver)
    our_key = next(line.split(":")[9] for line in fingerprint.splitlines()
                   if line.startswith("fpr:"))
    ours = GnuPG(tmp_path / "verifier")  # anyone with our public key, not our keyring
    ours.run("--import", data=owner.gpg.export(our_key))

    to_bob = messages[f"bob@{THEIRS}"]
    assert to_bob.get_content_type() == "multipart/signed"
    assert to_bob["Subject"] == f"{SUBJECT} to bob"
    raw = next(path.read_bytes() for path in receiver.messages()
               if f"bob@{THEIRS}".encode() in path.read_bytes())
    status = verify_signed(ours, raw, tmp_path)
    assert f"[GNUPG:] VALIDSIG {our_key}".encode() in status, status

    to_frank = messages[f"frank@{THEIRS}"]
    assert to_frank.get_content_type() == "multipart/encrypted"
    assert to_frank["Subject"] == "..."  # protected headers: the real one is inside
    raw = next(path.read_bytes() for path in receiver.messages()
               if f"frank@{THEIRS}".encode() in path.read_bytes())
    assert SUBJECT.encode() not in raw and BODY.encode() not in raw
    frank.run("--import", data=owner.gpg.export(our_key))
    opened = frank.run("--status-fd", "2", "--decrypt", data=armored_message(raw), check=False)
    assert opened.returncode == 0, opened.stderr
    assert f"[GNUPG:] VALIDSIG {our_key}".encode() in opened.stderr
    assert BODY.encode() in opened.stdout
    assert f"Subject: {SUBJECT} to frank".encode() in opened.stdout


def test_a_contact_key_naming_another_contact_is_not_used_for_them(
        owner: Owner, frank: GnuPG, start_ingest: Callable[..., IngestProcess],
        tmp_path: Path) -> None:
    """frank's key file also carries a user id bob@: mail to bob (no key of his own) must not
    be encrypted to frank's key, which bob cannot read."""
    receiver = start_ingest(maildir=tmp_path / "theirs" / "inbox", domain=THEIRS)
    fingerprint = frank.make_key(f"frank@{THEIRS}")
    frank.run("--quick-add-uid", fingerprint, f"bob@{THEIRS}")
    (tmp_path / "frank.asc").write_bytes(frank.export(fingerprint))
    owner.onionpost("contacts", "add", "frank", f"frank@{THEIRS}", "--key",
                    str(tmp_path / "frank.asc"))
    owner.onionpost("contacts", "add", "bob", f"bob@{THEIRS}")
    editor = tmp_path / "editor"
    editor.write_text(f'#!/bin/sh\necho "{BODY}" >> "$1"\n')
    editor.chmod(0o755)
    with SlowRelay(0.0, {THEIRS: receiver.port}) as relay:
        owner.env["ONIONPOST_TOR_SOCKS"] = f"127.0.0.1:{relay.port}"
        terminal = owner.neomutt(f'set editor = "{editor}"\n')
        neomutt_send(terminal, "bob", f"{SUBJECT} to bob")
    to_bob = stored_messages(receiver)[f"bob@{THEIRS}"]
    assert to_bob.get_content_type() == "multipart/signed"
