"""Encryption at rest with a real ingest and Debian's gpg: nothing in clear reaches tmp/, new/,
the logs or Redis; gpg gives back the exact bytes sent; signatures still verify; encrypted
mail is kept as it came; a key unfit to encrypt to stops ingest; no plaintext fallback."""

from __future__ import annotations

import email
import os
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from tests.integration.conftest import RCPT, files_in, split_trace
from tests.integration.test_ingest_durability import tiny_disk  # noqa: F401 (a fixture)
from tests.support.gpg import PAST, GnuPG
from tests.support.net import wait_for
from tests.support.servers import IngestProcess
from tests.support.smtp import RawSMTP, session_until_data
from tests.support.unfinished_data import CHUNK_LINE, UnfinishedData, memory_kb

from onionpost.pgp_key import MAX_RECIPIENTS

OWNER = "owner@example.onion"
MARKER = b"zq-secret-7341"  # in every subject and body sent here, never anywhere in clear
SUBJECT_MARKER = b"subject-zq-9157"
MB = 1_000_000


@pytest.fixture(scope="module")
def gpg(tmp_path_factory: pytest.TempPathFactory) -> GnuPG:
    keys = GnuPG(tmp_path_factory.mktemp("gnupg") / "home")
    keys.make_key(OWNER)
    return keys


@pytest.fixture(scope="module")
def owner_key(gpg: GnuPG, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "owner.asc"
    path.write_bytes(gpg.export(OWNER))
    return path


def message(body: bytes = b"", subject: bytes = SUBJECT_MARKER) -> bytes:
    return (b"From: Alice <alice@example.org>\r\nTo: " + RCPT.encode() + b"\r\n"
            b"Date: Mon, 30 Nov 2026 18:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n"
            b"X-Mailer: " + MARKER + b"\r\nSubject: " + subject + b" " + MARKER + b"\r\n\r\n"
            b"Hello " + MARKER + b"\r\n" + body)


def encrypted_part(stored: bytes) -> bytes:
    parsed = email.message_from_bytes(stored)
    assert parsed.get_content_type() == "multipart/encrypted"
    assert parsed.get_param("protocol") == "application/pgp-encrypted"
    parts = parsed.get_payload()
    assert isinstance(parts, list)
    version, payload = parts
    assert version.get_payload().strip() == "Version: 1"
    assert payload.get_content_type() == "application/octet-stream"
    data = payload.get_payload(decode=True)
    assert isinstance(data, bytes) and data.startswith(b"-----BEGIN PGP MESSAGE-----")
    return data


def decrypted(gpg: GnuPG, stored: bytes) -> bytes:
    result = gpg.decrypt(encrypted_part(stored))
    assert result.returncode == 0, result.stderr
    return result.stdout


def send(ingest: IngestProcess, content: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=60) as client:
        assert client.sendmail("alice@example.org", [RCPT], content) == {}


def only_stored(ingest: IngestProcess) -> bytes:
    [path] = ingest.messages()
    stored = path.read_bytes()
    assert path.name.endswith(f",S={len(stored)}")
    return stored


def redis_dump(url: str) -> bytes:
    """Every key and value in Redis, whatever its type."""
    client = redis.Redis.from_url(url)
    dump = []
    for key in client.scan_iter(count=1000):
        dump.append(key)
        kind = client.type(key)
        if kind == b"string":
            dump.append(client.get(key) or b"")
        elif kind == b"list":
            dump += client.lrange(key, 0, -1)
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                dump += [field, value]
        elif kind == b"set":
            dump += list(client.smembers(key))
        elif kind == b"zset":
            dump += list(client.zrange(key, 0, -1))
    return b"\n".join(dump)


@pytest.mark.parametrize("size", [0, 3_000_000], ids=["small", "spilled"])
def test_stored_encrypted_and_gpg_gives_back_the_exact_bytes(
        start_ingest: Callable[..., IngestProcess], owner_key: Path, gpg: GnuPG,
        redis_url: str, size: int) -> None:
    ingest = start_ingest(pgp_key=owner_key)
    sent = message(b"line of text\r\n.dot\r\n" * (size // 20))
    send(ingest, sent)
    stored = only_stored(ingest)
    assert MARKER not in stored and SUBJECT_MARKER not in stored
    trace, rest = split_trace(stored)
    assert trace.startswith(b"Return-Path: <alice@example.org>\r\nReceived: by ")
    assert rest.startswith(b"From: Alice <alice@example.org>\r\nTo: " + RCPT.encode()
                           + b"\r\nDate: Mon, 30 Nov 2026 18:00:00 +0000\r\n"
                           b"Message-ID: <m1@example.org>\r\nSubject: ...\r\nMIME-Version: 1.0")
    assert decrypted(gpg, stored) == sent
    assert files_in(ingest.maildir / "tmp") == []
    assert MARKER not in ingest.logs().encode()
    assert MARKER not in redis_dump(redis_url) and SUBJECT_MARKER not in redis_dump(redis_url)


def test_the_subject_is_kept_in_clear_when_asked(
        start_ingest: Callable[..., IngestProcess], owner_key: Path, gpg: GnuPG) -> None:
    ingest = start_ingest(pgp_key=owner_key, pgp_subject="keep")
    sent = message()
    send(ingest, sent)
    stored = only_stored(ingest)
    assert b"\r\nSubject: " + SUBJECT_MARKER + b" " + MARKER + b"\r\n" in stored
    assert b"X-Mailer" not in stored and b"Hello " + MARKER not in stored
    assert decrypted(gpg, stored) == sent


def test_nothing_in_clear_in_tmp_while_a_slow_data_arrives(
        start_ingest: Callable[..., IngestProcess], owner_key: Path, gpg: GnuPG) -> None:
    ingest = start_ingest(pgp_key=owner_key)
    body = (b"slow line " + MARKER + b"\r\n") * 40_000  # about 1 MB: spilled as it comes
    sent = message(body)
    with RawSMTP(ingest.port, timeout=60) as client:
        client.greeting()
        session_until_data(client, RCPT)
        client.send(sent[:len(sent) // 2])
        wait_for(lambda: files_in(ingest.maildir / "tmp")
                 and files_in(ingest.maildir / "tmp")[0].stat().st_size > 300_000,
                 what="the first half to be spilled to tmp/")
        for path in files_in(ingest.maildir / "tmp"):
            data = path.read_bytes()
            assert MARKER not in data and SUBJECT_MARKER not in data
            assert b"Return-Path" not in data  # not even our own trace fields
        client.send(sent[len(sent) // 2:] + b".\r\n")
        reply = client.reply()
        assert reply is not None and reply.code == 250
    assert decrypted(gpg, only_stored(ingest)) == sent


def test_signed_mail_still_verifies_after_decryption(
        start_ingest: Callable[..., IngestProcess], owner_key: Path, gpg: GnuPG,
        tmp_path: Path) -> None:
    signer = GnuPG(tmp_path / "alice-gnupg")
    signer.make_key("alice@example.org")
    gpg.run("--import", data=signer.export("alice@example.org"))
    signed_part = (b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
                   b"Signed words " + MARKER + b"\r\n")
    signature = signer.sign_detached("alice@example.org", signed_part)
    sent = (b"From: alice@example.org\r\nTo: " + RCPT.encode() + b"\r\nSubject: signed\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/signed; micalg=pgp-sha256;\r\n"
            b" protocol=\"application/pgp-signature\"; boundary=\"b1\"\r\n\r\n"
            b"--b1\r\n" + signed_part + b"--b1\r\n"
            b"Content-Type: application/pgp-signature\r\n\r\n"
            + signature.replace(b"\n", b"\r\n") + b"\r\n--b1--\r\n")
    ingest = start_ingest(pgp_key=owner_key)
    send(ingest, sent)
    clear = decrypted(gpg, only_stored(ingest))
    assert clear == sent
    # The signed part and its signature as they sit in the decrypted bytes.
    parts = email.message_from_bytes(clear).get_payload()
    assert isinstance(parts, list)
    _, sig = parts
    detached = sig.get_payload(decode=True)
    assert isinstance(detached, bytes)
    (tmp_path / "part.asc").write_bytes(detached)
    (tmp_path / "part").write_bytes(clear.split(b"--b1\r\n")[1])
    verified = gpg.verify_detached(tmp_path / "part.asc", tmp_path / "part")
    assert verified.returncode == 0 and b"Good signature" in verified.stderr, verified.stderr


@pytest.mark.parametrize("kind", ["pgp-mime", "inline"])
def test_already_encrypted_mail_is_stored_as_received(
        start_ingest: Callable[..., IngestProcess], owner_key: Path, gpg: GnuPG,
        kind: str) -> None:
    armored = gpg.run("--armor", "--encrypt", "--recipient", OWNER,
                      data=b"secret").stdout.replace(b"\n", b"\r\n")
    if kind == "inline":
        sent = b"From: a@example.org\r\nSubject: inline\r\n\r\n" + armored
    else:
        sent = (b"From: a@example.org\r\nSubject: pgp/mime\r\nMIME-Version: 1.0\r\n"
                b"Content-Type: multipart/encrypted;\r\n"
                b" protocol=\"application/pgp-encrypted\"; boundary=\"x\"\r\n\r\n"
                b"--x\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n"
                b"--x\r\nContent-Type: application/octet-stream\r\n\r\n" + armored
                + b"\r\n--x--\r\n")
    ingest = start_ingest(pgp_key=owner_key)
    send(ingest, sent)
    assert split_trace(only_stored(ingest))[1] == sent


def test_a_message_that_merely_quotes_a_pgp_block_is_encrypted(
        start_ingest: Callable[..., IngestProcess], owner_key: Path, gpg: GnuPG) -> None:
    armored = gpg.run("--armor", "--encrypt", "--recipient", OWNER,
                      data=b"x").stdout.replace(b"\n", b"\r\n")
    sent = b"Subject: s\r\n\r\nMy secret " + MARKER + b"\r\n" + armored
    ingest = start_ingest(pgp_key=owner_key)
    send(ingest, sent)
    stored = only_stored(ingest)
    assert MARKER not in stored
    assert decrypted(gpg, stored) == sent


def fake_pgp(kind: str, size: int = 0) -> bytes:
    """Clear text in the shape of encrypted mail: the armor lines around it, inline or as
    RFC 3156's second part (issue 13: both were stored as received, in clear)."""
    clear = (b"-----BEGIN PGP MESSAGE-----\r\n\r\nMy secret " + MARKER + b"\r\n"
             + b"more clear words\r\n" * (size // 18) + b"-----END PGP MESSAGE-----\r\n")
    head = b"From: a@example.org\r\nSubject: " + SUBJECT_MARKER + b"\r\n"
    if kind == "inline":
        return head + b"\r\n" + clear
    return (head + b"MIME-Version: 1.0\r\nContent-Type: multipart/encrypted;\r\n"
            b" protocol=\"application/pgp-encrypted\"; boundary=\"x\"\r\n\r\n"
            b"--x\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n"
            b"--x\r\nContent-Type: application/octet-stream\r\n\r\n" + clear + b"\r\n--x--\r\n")


@pytest.mark.parametrize("kind", ["pgp-mime", "inline"])
def test_clear_text_between_pgp_armor_lines_is_stored_encrypted(
        start_ingest: Callable[..., IngestProcess], owner_key: Path, gpg: GnuPG,
        kind: str) -> None:
    sent = fake_pgp(kind)
    ingest = start_ingest(pgp_key=owner_key)
    send(ingest, sent)
    stored = only_stored(ingest)
    assert MARKER not in stored and SUBJECT_MARKER not in stored
    assert decrypted(gpg, stored) == sent


@pytest.mark.parametrize("size", [0, 2_000_000], ids=["small", "spilled"])
def test_a_real_inline_message_beside_a_fake_one_is_kept_as_sent(
        start_ingest: Callable[..., IngestProcess], owner_key: Path, gpg: GnuPG,
        size: int) -> None:
    """In one ingest: the real one stored byte for byte as sent, the fake one encrypted."""
    armored = gpg.run("--armor", "-z", "0", "--encrypt", "--recipient", OWNER,
                      data=os.urandom(size) + b"secret").stdout.replace(b"\n", b"\r\n")
    real, fake = b"From: a@example.org\r\nSubject: inline\r\n\r\n" + armored, fake_pgp(
        "inline", size)
    ingest = start_ingest(pgp_key=owner_key)
    send(ingest, real)
    send(ingest, fake)
    stored = [path.read_bytes() for path in ingest.messages()]
    kept = [data for data in stored if split_trace(data)[1] == real]
    wrapped = [data for data in stored if split_trace(data)[1] != real]
    assert len(kept) == 1 and len(wrapped) == 1
    assert MARKER not in wrapped[0] and decrypted(gpg, wrapped[0]) == fake


def ingest_exit(owner_key: Path | str, tmp_path: Path, redis_url: str
                ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ONIONPOST_PGP_KEY": str(owner_key), "ONIONPOST_DOMAIN":
           "x" * 56 + ".onion", "ONIONPOST_MAILDIR": str(tmp_path / "inbox"),
           "ONIONPOST_INGEST_LISTEN": "127.0.0.1:0", "ONIONPOST_REDIS_URL": redis_url}
    return subprocess.run([sys.executable, "-m", "onionpost", "ingest"], env=env,
                          capture_output=True, text=True, timeout=60)


def broken_keys(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (key file, what ingest's one line must say)."""
    keys = GnuPG(tmp_path / "broken-gnupg")
    keys.make_key("expired@x", "future-default", "default", "1d", "--faked-system-time", PAST)
    revoked = keys.make_key("revoked@x")
    keys.revoke(revoked)
    keys.make_key("signonly@x", "ed25519", "sign")
    keys.make_key("secret@x")
    many = keys.make_key("many@x")
    for _ in range(MAX_RECIPIENTS):  # with the first: one more than allowed
        keys.run("--quick-add-key", many, "cv25519", "encr", "never")
    files = {"many-subkeys": (keys.export("many@x"), "subkeys that may encrypt"),
             "expired": (keys.export("expired@x"), "expired on 2020-01-02"),
             "revoked": (keys.export("revoked@x"), "is revoked"),
             "sign-only": (keys.export("signonly@x"), "cannot encrypt"),
             "secret": (keys.export_secret("secret@x"), "holds a secret key"),
             "garbage": (b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnonsense\n",
                         "not an OpenPGP public key")}
    result = {}
    for name, (data, says) in files.items():
        path = tmp_path / f"{name}.asc"
        path.write_bytes(data)
        result[name] = (path, says)
    result["missing"] = (tmp_path / "nowhere.asc", "cannot read the OpenPGP key")
    # Read whole before: memory without end (MemoryError and a traceback under a limit).
    result["endless"] = (Path("/dev/zero"), "more than 1000000 bytes")
    unreadable = tmp_path / "unreadable.asc"
    unreadable.write_bytes(files["sign-only"][0])
    unreadable.chmod(0)
    if os.geteuid() != 0:  # root reads any file
        result["unreadable"] = (unreadable, "cannot read the OpenPGP key")
    return result


def test_a_key_unfit_to_encrypt_to_stops_ingest_with_one_line_and_78(
        tmp_path: Path, redis_url: str) -> None:
    for name, (path, says) in broken_keys(tmp_path).items():
        result = ingest_exit(path, tmp_path, redis_url)
        assert result.returncode == 78, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0], (name, result.stderr)
        assert "Traceback" not in result.stderr
        assert files_in(tmp_path / "inbox" / "new") == []


def test_a_binary_key_works_too(start_ingest: Callable[..., IngestProcess], gpg: GnuPG,
                                tmp_path: Path) -> None:
    binary = tmp_path / "owner.gpg"
    binary.write_bytes(gpg.export(OWNER, armor=False))
    ingest = start_ingest(pgp_key=binary)
    send(ingest, message())
    assert decrypted(gpg, only_stored(ingest)) == message()


def test_a_key_that_expires_while_ingest_runs_gets_451_and_nothing_stored(
        start_ingest: Callable[..., IngestProcess], tmp_path: Path) -> None:
    """The only failure of encryption a real key can bring once ingest has checked it at
    start: it expires (here 20 s after this test makes it). Fail closed: 451, no file."""
    keys = GnuPG(tmp_path / "gnupg")
    expires = int(time.time()) + 20
    keys.make_key("soon@x", "future-default", "default", "1d",
                  "--faked-system-time", str(expires - 86_400))
    key = tmp_path / "soon.asc"
    key.write_bytes(keys.export("soon@x"))
    ingest = start_ingest(pgp_key=key)
    wait_for(lambda: time.time() > expires + 1, timeout=60, what="the key to expire")
    for size in (0, 1_000_000):  # in memory, and spilled to tmp/
        with RawSMTP(ingest.port, timeout=60) as client:
            client.greeting()
            session_until_data(client, RCPT)
            client.send(message(b"x" * 998 + b"\r\n") * (size // 1000 + 1) + b".\r\n")
            reply = client.reply()
            assert reply is not None and (reply.code, reply.enhanced) == (451, "4.3.0")
    assert ingest.messages() == []
    wait_for(lambda: not files_in(ingest.maildir / "tmp"), what="tmp/ to be emptied")
    assert ingest.logs().count("event=encrypt_failed") == 2
    assert MARKER not in ingest.logs().encode()


def test_memory_stays_bounded_with_30_sessions_of_9_mb_encrypted(
        start_ingest: Callable[..., IngestProcess], owner_key: Path, gpg: GnuPG) -> None:
    """test_ingest_streaming's attack with a key set: the spill is encrypted as it comes,
    the sealing of the 30 messages at their end runs one at a time."""
    ingest = start_ingest(pgp_key=owner_key, max_message_size=10 * MB, max_bytes="1GB",
                          max_sessions=40, circuit_max_sessions=40,
                          circuit_messages_per_minute=100)
    assert ingest.process is not None
    attack = UnfinishedData(ingest.port, RCPT, sessions=30, size=9 * MB).open()
    try:
        attack.send()
        held_kb = memory_kb(ingest.process.pid)
        assert held_kb < 200_000, f"ingest holds {held_kb} KiB"
        spilled = files_in(ingest.maildir / "tmp")
        assert len(spilled) == 30
        assert all(CHUNK_LINE not in path.read_bytes()[:1_000_000] for path in spilled)
        replies = attack.finish()
    finally:
        attack.close()
    assert [reply[:3] for reply in replies] == [b"250"] * 30
    peak_kb = memory_kb(ingest.process.pid, "VmHWM")
    assert peak_kb < 250_000, f"ingest's peak: {peak_kb} KiB"
    stored = ingest.messages()
    assert len(stored) == 30 and files_in(ingest.maildir / "tmp") == []
    clear = decrypted(gpg, stored[0].read_bytes())
    assert CHUNK_LINE * 100 in clear and CHUNK_LINE not in stored[0].read_bytes()


def test_big_messages_waiting_to_be_sealed_are_not_timed_out(
        start_ingest: Callable[..., IngestProcess], owner_key: Path) -> None:
    """Sealing runs one message at a time: the sixth of six 9 MB messages ended together
    waits for five others. The store after DATA has the data timeout (RFC 5321: the client
    waits 10 minutes for this reply), not the 1 s idle command timeout set here."""
    ingest = start_ingest(pgp_key=owner_key, command_timeout=1, max_message_size=10 * MB,
                          max_bytes="1GB", circuit_max_sessions=10)
    attack = UnfinishedData(ingest.port, RCPT, sessions=6, size=9 * MB).open()
    try:
        attack.send()
        replies = attack.finish()
    finally:
        attack.close()
    assert [reply[:3] for reply in replies] == [b"250"] * 6
    assert len(ingest.messages()) == 6


def test_a_deeply_nested_encrypted_label_is_stored_encrypted(
        start_ingest: Callable[..., IngestProcess], owner_key: Path, gpg: GnuPG) -> None:
    # 3000 nested multiparts under multipart/encrypted, 180 KB: the check that it was
    # already encrypted recursed per level on the event loop until RecursionError.
    nested = b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (n, n + 1)
                      for n in range(3000))
    sent = (b"Subject: " + SUBJECT_MARKER + b"\r\nContent-Type: multipart/encrypted;"
            b" protocol=\"application/pgp-encrypted\"; boundary=b0\r\n\r\n" + nested + MARKER
            + b"\r\n")
    ingest = start_ingest(pgp_key=owner_key)
    send(ingest, sent)
    stored = only_stored(ingest)
    assert MARKER not in stored and SUBJECT_MARKER not in stored
    assert decrypted(gpg, stored) == sent


def nothing_in_clear(ingest: IngestProcess) -> None:
    """No file under the Maildir holds the marker; tmp/ is empty once ingest is done."""
    wait_for(lambda: files_in(ingest.maildir / "tmp") == [], what="tmp/ to be emptied")
    for path in ingest.maildir.rglob("*"):
        assert not path.is_file() or MARKER not in path.read_bytes(), path


def test_a_full_disk_while_sealing_answers_452_and_keeps_nothing(
        tiny_disk: Path, start_ingest: Callable[..., IngestProcess],  # noqa: F811
        owner_key: Path) -> None:
    # The spill (~600 KB, AES) fits on the 1 MB disk; the sealed file written beside it
    # (~800 KB armored) does not.
    ingest = start_ingest(pgp_key=owner_key, maildir=tiny_disk)
    with RawSMTP(ingest.port, timeout=60) as client:
        client.greeting()
        session_until_data(client, RCPT)
        client.send(message(MARKER + b"\r\n" + CHUNK_LINE * (600_000 // len(CHUNK_LINE)))
                    + b".\r\n")
        reply = client.reply()
        assert reply is not None and (reply.code, reply.enhanced) == (452, "4.3.1")
    assert ingest.messages() == []
    nothing_in_clear(ingest)
    assert "event=write_failed error=ENOSPC" in ingest.logs()
    send(ingest, message())  # and the next one is taken
    assert len(ingest.messages()) == 1


@pytest.mark.parametrize("how", ["hang-up", "sigterm"])
def test_an_end_of_data_cut_while_sealing_leaves_nothing_in_clear(
        start_ingest: Callable[..., IngestProcess], owner_key: Path, gpg: GnuPG,
        how: str) -> None:
    ingest = start_ingest(pgp_key=owner_key, max_message_size=10 * MB)
    sent = message(CHUNK_LINE * (9 * MB // len(CHUNK_LINE)))
    client = RawSMTP(ingest.port, timeout=60)
    client.greeting()
    session_until_data(client, RCPT)
    client.send(sent + b".\r\n")  # sealing 9 MB takes a while: cut into it
    if how == "hang-up":
        client.close()
    else:
        assert ingest.stop() == 0
        reply = client.reply()
        client.close()
        stored = ingest.messages()
        # Stored and answered 250, or neither: never a 250 without the message on disk.
        assert (reply is not None and reply.code == 250) == bool(stored), (reply, stored)
        if stored:
            assert decrypted(gpg, stored[0].read_bytes()).endswith(CHUNK_LINE)
    nothing_in_clear(ingest)
