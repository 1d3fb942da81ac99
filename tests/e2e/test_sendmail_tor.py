"""`onionpost-sendmail` over the private Tor network: alice and bob (and carol), each an
ingest behind its own onion service; the installed script sends between them, and neomutt
sends through it. Every sendmail run has a guard that fails and records any local lookup of
a .onion name (sendmail_guard/sitecustomize.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from onionpost import onion
from onionpost.tor.socks import isolation_username
from tests.e2e.conftest import ingest_behind
from tests.e2e.tornet import OnionService, TorNetwork
from tests.support.gpg import GnuPG
from tests.support.net import free_port
from tests.support.pgpmime import armored_message, verify_signed
from tests.support.servers import IngestProcess
from tests.support.tmux import Terminal, neomutt_send

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
GUARD = Path(__file__).parent / "sendmail_guard"
NAMES = ("alice", "bob", "carol")


@dataclass
class Receiver:
    service: OnionService
    port: int

    @property
    def address(self) -> str:
        return self.service.address


@pytest.fixture(scope="module")
def receivers(tor_network: TorNetwork) -> dict[str, Receiver]:
    """Three onion services (tor only); each test starts the ingests it needs behind them."""
    result = {}
    for name in NAMES:
        port = free_port()
        service = tor_network.add_onion_service(f"sendmail-{name}", {25: port},
                                                proxy_protocol=True)
        result[name] = Receiver(service, port)
    return result


@pytest.fixture
def ingest_for(receivers: dict[str, Receiver], start_ingest: Callable[..., IngestProcess],
               tmp_path: Path) -> Callable[[str], IngestProcess]:
    def start(name: str) -> IngestProcess:
        receiver = receivers[name]
        return ingest_behind(start_ingest, receiver.address, receiver.port,
                             maildir=tmp_path / name / "inbox")

    return start


class Sender:
    """One user's machine: an onion of their own, an address book, onionpost-sendmail."""

    def __init__(self, network: TorNetwork, home: Path, own: str) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.dns_log = home / "dns-lookups"
        self.env = {
            "PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(home), "TERM": "dumb",
            "PYTHONPATH": str(GUARD), "DNS_GUARD_LOG": str(self.dns_log),
            "ONIONPOST_TOR_SOCKS": f"127.0.0.1:{network.socks_port}",
            "ONIONPOST_DOMAIN": own, "ONIONPOST_ADDRESS_BOOK": str(home / "contacts"),
            "ONIONPOST_SEND_RETRY_DELAYS": "1,2", "ONIONPOST_SEND_TIMEOUT": "30"}

    def run(self, argv: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(argv, input=stdin, capture_output=True, env=self.env,
                              timeout=180, check=False)

    def sendmail(self, argv: list[str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
        return self.run([str(BIN / "onionpost-sendmail"), *argv], stdin)

    def local_onion_lookups(self) -> str:
        return self.dns_log.read_text() if self.dns_log.exists() else ""


@pytest.fixture
def sender_for(tor_network: TorNetwork, receivers: dict[str, Receiver],
               tmp_path: Path) -> Callable[[str], Sender]:
    return lambda name: Sender(tor_network, tmp_path / f"{name}-home",
                               receivers[name].address)


def letter(sender: str, to: str, subject: str) -> bytes:
    return (f"From: {sender}\nTo: {to}\nSubject: {subject}\n"
            f"User-Agent: NeoMutt/20220429\n\nHello over Tor.\n").encode()


def only_message(ingest: IngestProcess) -> bytes:
    paths = ingest.messages()
    assert len(paths) == 1, [path.name for path in paths]
    return paths[0].read_bytes()


def test_the_guard_catches_a_local_onion_lookup(sender_for: Callable[[str], Sender]) -> None:
    alice = sender_for("alice")
    code = "import socket\ntry: socket.getaddrinfo('x.onion', 25)\nexcept OSError: pass"
    assert alice.run([sys.executable, "-c", code]).returncode == 0
    assert "getaddrinfo x.onion" in alice.local_onion_lookups()


def test_alice_writes_to_bob_and_bob_answers(
        receivers: dict[str, Receiver], ingest_for: Callable[[str], IngestProcess],
        sender_for: Callable[[str], Sender]) -> None:
    inbox = {name: ingest_for(name) for name in ("alice", "bob")}
    for sender, recipient in [("alice", "bob"), ("bob", "alice")]:
        user = sender_for(sender)
        to = f"{recipient}@{receivers[recipient].address}"
        result = user.sendmail(["-oi", "--", to],
                               letter(f"{sender}@{receivers[sender].address}", to, sender))
        assert result.returncode == 0, result.stderr.decode()
        assert result.stderr == b""
        assert user.local_onion_lookups() == ""
        stored = message_from_bytes(only_message(inbox[recipient]))
        assert stored["Subject"] == sender
        assert stored["From"] == f"{sender}@{receivers[sender].address}"
        assert stored["User-Agent"] is None
        assert stored["Date"].endswith("+0000")
        assert stored["Message-ID"].endswith(f"@{receivers[sender].address}>")
        assert re.match(rf"by {receivers[recipient].address} \(onionpost\) with ESMTP id",
                        stored["Received"])


def test_one_message_to_three_onions_arrives_at_each_once(
        tor_network: TorNetwork, receivers: dict[str, Receiver],
        ingest_for: Callable[[str], IngestProcess], sender_for: Callable[[str], Sender]) -> None:
    inbox = {name: ingest_for(name) for name in NAMES}
    alice = sender_for("alice")
    to = [f"alice@{receivers['alice'].address}", f"bob@{receivers['bob'].address}",
          f"robert@{receivers['bob'].address}"]
    bcc = f"carol@{receivers['carol'].address}"
    raw = letter(to[0], ", ".join(to), "to all")
    raw = raw.replace(b"Subject:", f"Bcc: {bcc}\nSubject:".encode(), 1)
    result = alice.sendmail(["-oi", "-t", "-v"], raw)
    assert result.returncode == 0, result.stderr.decode()
    assert len(result.stdout.decode().splitlines()) == 4  # one "sent" line per recipient
    assert alice.local_onion_lookups() == ""
    for name in NAMES:
        stored = only_message(inbox[name])  # bob and robert: one session, one copy
        assert b"Subject: to all" in stored
        assert b"Bcc" not in stored and b"carol@" not in stored
    with tor_network.client_controller() as controller:
        circuits = controller.get_info("circuit-status")
    for name in NAMES:
        service_id = receivers[name].address.removesuffix(".onion")
        username = isolation_username(receivers[name].address)
        own = [line for line in circuits.splitlines() if f"SOCKS_USERNAME=\"{username}\"" in line]
        assert own, f"no circuit isolated for {name}: {circuits}"
        assert all(f"REND_QUERY={service_id}" in line for line in own)


@pytest.mark.parametrize(("recipient", "words"), [
    ("frank@example.org", "onionpost delivers only to .onion addresses"),
    ("frank@expyuzz4wqqyqhjn.onion", "v2 onion address"),
    ("frank@{bob_typo}", "wrong checksum"),
])
def test_bad_recipients_are_refused_and_nothing_is_sent(
        recipient: str, words: str, receivers: dict[str, Receiver],
        ingest_for: Callable[[str], IngestProcess], sender_for: Callable[[str], Sender]) -> None:
    bob = ingest_for("bob")
    address = receivers["bob"].address
    typo = address[:7] + ("a" if address[7] != "a" else "b") + address[8:]
    assert not onion.is_valid(typo)
    recipient = recipient.format(bob_typo=typo)
    alice = sender_for("alice")
    result = alice.sendmail(["-oi", f"bob@{address}", recipient],
                            letter(f"alice@{receivers['alice'].address}", recipient, "no"))
    assert result.returncode == 67
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 2
    assert recipient in lines[0] and words in lines[0]
    assert f"bob@{address}: not sent" in lines[1]
    assert bob.messages() == []


def test_a_receiver_that_is_down_means_75_after_the_retries_and_nothing_half_sent(
        receivers: dict[str, Receiver], ingest_for: Callable[[str], IngestProcess],
        sender_for: Callable[[str], Sender]) -> None:
    carol = ingest_for("carol")  # bob's onion is up, his ingest is not running
    alice = sender_for("alice")
    to = [f"carol@{receivers['carol'].address}", f"bob@{receivers['bob'].address}"]
    result = alice.sendmail(["-oi", *to], letter(to[0], ", ".join(to), "half?"))
    assert result.returncode == 75
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 2
    assert f"{to[0]}: not sent" in lines[0]
    assert to[1] in lines[1] and "gave up after 3 tries; try again later" in lines[1]
    assert carol.messages() == []
    assert alice.local_onion_lookups() == ""


def test_neomutt_sends_through_onionpost_sendmail(
        receivers: dict[str, Receiver], ingest_for: Callable[[str], IngestProcess],
        sender_for: Callable[[str], Sender]) -> None:
    bob = ingest_for("bob")
    alice = sender_for("alice")
    added = alice.run([str(BIN / "onionpost"), "contacts", "add", "frank",
                       f"frank@{receivers['bob'].address}"])
    assert added.returncode == 0, added.stderr.decode()
    mail = alice.home / "mail"
    for folder in ("inbox", "sent", "drafts", "trash"):
        for sub in ("cur", "new", "tmp"):
            (mail / folder / sub).mkdir(parents=True)
    config = alice.run([str(BIN / "onionpost"), "neomutt-config", "--folder", str(mail)])
    assert config.returncode == 0, config.stderr.decode()
    rc = alice.home / "neomuttrc"
    rc.write_bytes(config.stdout)

    alice.env["TZ"] = "Asia/Tokyo"  # neomutt writes a local Date; it must leave as +0000
    sent = alice.run(["neomutt", "-n", "-F", str(rc), "-s", "from neomutt", "--", "frank"],
                     b"Written in neomutt.\n")
    assert sent.returncode == 0, (sent.stdout + sent.stderr).decode()
    assert alice.local_onion_lookups() == ""
    stored = message_from_bytes(only_message(bob))
    assert stored["Subject"] == "from neomutt"
    assert stored["To"] == f"frank@{receivers['bob'].address}"
    assert stored["From"] == f"anon <anon@{receivers['alice'].address}>"
    assert stored["Message-ID"].endswith(f"@{receivers['alice'].address}>")
    assert stored["User-Agent"] is None and stored["Date"].endswith("+0000")
    assert "Written in neomutt." in stored.get_payload()
    assert len(os.listdir(mail / "sent" / "cur")) + len(os.listdir(mail / "sent" / "new")) == 1


def test_an_onion_that_does_not_exist_means_75(
        receivers: dict[str, Receiver], ingest_for: Callable[[str], IngestProcess],
        sender_for: Callable[[str], Sender]) -> None:
    bob = ingest_for("bob")
    never_published = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    nobody = f"nobody@{onion.from_public_key(never_published)}"
    alice = sender_for("alice")
    to = [f"bob@{receivers['bob'].address}", nobody]
    result = alice.sendmail(["-oi", *to], letter(to[0], ", ".join(to), "ghost"))
    assert result.returncode == 75
    lines = result.stderr.decode().splitlines()
    assert f"{to[0]}: not sent" in lines[0]
    assert f"{nobody}: cannot reach the onion service: onion service not found" in lines[1]
    assert bob.messages() == []
    assert alice.local_onion_lookups() == ""


def test_an_address_tor_calls_invalid_is_refused_for_good(
        sender_for: Callable[[str], Sender], receivers: dict[str, Receiver]) -> None:
    # Checksum and version are right, but these 32 bytes are no ed25519 point: Tor (not our
    # checksum test) refuses it, and that is final (67), not "try later".
    not_a_point = f"nobody@{onion.from_public_key(bytes(range(32)))}"
    alice = sender_for("alice")
    result = alice.sendmail(["-oi", not_a_point],
                            letter(f"alice@{receivers['alice'].address}", not_a_point, "bad"))
    assert result.returncode == 67
    [line] = result.stderr.decode().splitlines()
    assert f"{not_a_point}: Tor says this onion address is invalid" in line


def test_alice_signs_in_neomutt_and_bob_stores_it_encrypted_with_the_signature_intact(
        receivers: dict[str, Receiver], start_ingest: Callable[..., IngestProcess],
        sender_for: Callable[[str], Sender], tmp_path: Path) -> None:
    """Issue 13: alice's neomutt (generated config, her key from `pgp init`) signs; bob's
    ingest encrypts at rest to bob's key; decrypted, gpg finds alice's good signature."""
    bob_address = f"anon@{receivers['bob'].address}"
    bob_keys = GnuPG(tmp_path / "bob-gnupg")
    bob_keys.make_key(bob_address)
    (tmp_path / "bob.asc").write_bytes(bob_keys.export(bob_address))
    bob = ingest_behind(start_ingest, receivers["bob"].address, receivers["bob"].port,
                        maildir=tmp_path / "bob" / "inbox", pgp_key=tmp_path / "bob.asc")
    alice = sender_for("alice")
    alice.env["GNUPGHOME"] = str(alice.home / ".gnupg")
    (alice.home / ".gnupg").mkdir(mode=0o700)
    try:
        made = alice.run([str(BIN / "onionpost"), "pgp", "init", "--no-passphrase", "--out",
                          str(tmp_path / "alice.asc")])
        assert made.returncode == 0, made.stderr.decode()
        alice_key = made.stdout.decode().strip()
        mail = alice.home / "mail"
        for folder in ("inbox", "sent", "drafts", "trash"):
            for sub in ("cur", "new", "tmp"):
                (mail / folder / sub).mkdir(parents=True)
        config = alice.run([str(BIN / "onionpost"), "neomutt-config", "--folder", str(mail)])
        assert config.returncode == 0, config.stderr.decode()
        editor = alice.home / "editor"
        editor.write_text('#!/bin/sh\necho "Signed and sealed." >> "$1"\n')
        editor.chmod(0o755)
        rc = alice.home / "neomuttrc"
        rc.write_text(config.stdout.decode() + f'set editor = "{editor}"\n')
        # In a terminal, as alice types it: neomutt's batch mode (-s, body on stdin) never
        # signs; only NeoMutt 2024-01-21 and later can (-C), and Debian's is 20220429.
        terminal = Terminal(f"neomutt -F {rc}", {**alice.env, "TERM": "xterm"})
        try:
            terminal.wait_for("inbox", "neomutt's index")
            compose = neomutt_send(terminal, bob_address, "signed over tor")
        finally:
            terminal.close()
        assert "Sign" in compose, compose
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=alice.env, check=False)
    stored = only_message(bob)
    assert b"Signed and sealed." not in stored and b"signed over tor" not in stored
    assert message_from_bytes(stored).get_content_type() == "multipart/encrypted"
    opened = bob_keys.decrypt(armored_message(stored))
    assert opened.returncode == 0, opened.stderr.decode()
    letter_sent = opened.stdout
    assert message_from_bytes(letter_sent)["Subject"] == "signed over tor"
    assert message_from_bytes(letter_sent).get_content_type() == "multipart/signed"
    bob_keys.run("--import", str(tmp_path / "alice.asc"))
    status = verify_signed(bob_keys, letter_sent, tmp_path)
    assert f"[GNUPG:] VALIDSIG {alice_key}".encode() in status, status
    assert b"[GNUPG:] GOODSIG" in status
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], check=False,
                   env={**os.environ, "GNUPGHOME": str(bob_keys.home)})
