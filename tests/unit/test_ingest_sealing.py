"""SealedSpool with a gpg-made key: a small message is encrypted in memory, a big one spills
only AES-GCM records to tmp/ and ends as one encrypted file; failures leave no file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from tests.support.gpg import GnuPG

from onionpost.ingest import delivery as deliveries
from onionpost.ingest.sealing import EncryptionError, SealedSpool, Sealer, SpillCipher
from onionpost.pgp_key import OwnerKey

HEADER = b"Return-Path: <a@b>\r\n"
MARKER = b"marker-5531"


@pytest.fixture(scope="module")
def gpg(tmp_path_factory: pytest.TempPathFactory) -> GnuPG:
    keys = GnuPG(tmp_path_factory.mktemp("gnupg") / "home")
    keys.make_key("owner@x.onion")
    return keys


@pytest.fixture
def sealer(gpg: GnuPG) -> Sealer:
    return Sealer(OwnerKey.parse(gpg.export("owner@x.onion"), "owner.asc"), hide_subject=True)


def payload(stored: bytes, gpg: GnuPG) -> bytes:
    start = stored.index(b"-----BEGIN PGP MESSAGE-----")
    end = stored.index(b"-----END PGP MESSAGE-----") + 25
    result = gpg.decrypt(stored[start:end])
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_small_message_is_sealed_in_memory(
        tmp_dir: str, threads: ThreadPoolExecutor, sealer: Sealer, gpg: GnuPG) -> None:
    message = b"Subject: " + MARKER + b"\r\n\r\n" + MARKER + b"\r\n"

    async def receive() -> deliveries.Content:
        spool = SealedSpool(tmp_dir, "ID1", HEADER, threads, sealer)
        spool.add([message])
        await spool.seal()
        spool.hand_over()
        content = await spool.finish()
        assert isinstance(content, list) and spool.size == sum(map(len, content))
        return content

    content = asyncio.run(receive())
    assert isinstance(content, list)
    stored = b"".join(content)
    assert stored.startswith(HEADER + b"Subject: ...\r\nMIME-Version: 1.0\r\n")
    assert MARKER not in stored and payload(stored, gpg) == message
    assert os.listdir(tmp_dir) == []


@pytest.mark.parametrize("process_size", [10 * 1024 * 1024, 0], ids=["thread", "child"])
def test_a_spilled_message_reaches_tmp_only_encrypted(
        tmp_dir: str, threads: ThreadPoolExecutor, sealer: Sealer, gpg: GnuPG,
        process_size: int) -> None:
    sealer.process_size = process_size  # 0: sealed by ingest/seal_child.py
    blocks = [b"Subject: s\r\n\r\n"] + [MARKER + bytes([65 + n]) * 70_000 + b"\r\n"
                                        for n in range(4)]

    async def receive() -> tuple[deliveries.Content, int]:
        spool = SealedSpool(tmp_dir, "ID2", HEADER, threads, sealer)
        for block in blocks[:4]:
            await spool.spill([block])
            for name in os.listdir(tmp_dir):
                spilled = Path(tmp_dir, name).read_bytes()
                assert MARKER not in spilled and b"Return-Path" not in spilled
                assert b"A" * 1000 not in spilled
        spool.add([blocks[4]])
        await spool.seal()
        spool.hand_over()
        return await spool.finish(), spool.size

    content, size = asyncio.run(receive())
    assert isinstance(content, deliveries.Written)
    assert os.listdir(tmp_dir) == [content.tmp_name]  # the spill file is gone
    stored = Path(tmp_dir, content.tmp_name).read_bytes()
    assert len(stored) == size and stored.startswith(HEADER + b"Subject: ...\r\n")
    assert MARKER not in stored and payload(stored, gpg) == b"".join(blocks)


def test_a_discarded_spilled_message_leaves_nothing(
        tmp_dir: str, threads: ThreadPoolExecutor, sealer: Sealer) -> None:
    async def receive() -> None:
        spool = SealedSpool(tmp_dir, "ID3", HEADER, threads, sealer)
        await spool.spill([b"x" * 100_000])
        spool.discard()
        await spool.seal()
        assert spool.error is None

    asyncio.run(receive())
    threads.shutdown(wait=True)
    assert os.listdir(tmp_dir) == []


def test_an_expired_key_fails_the_seal_and_nothing_is_kept(
        tmp_dir: str, threads: ThreadPoolExecutor, sealer: Sealer) -> None:
    sealer.key._expires = 1.0  # the key expired while ingest ran

    async def receive() -> None:
        spool = SealedSpool(tmp_dir, "ID4", HEADER, threads, sealer)
        await spool.spill([b"Subject: s\r\n\r\n" + b"x" * 100_000])
        with pytest.raises(EncryptionError, match="has expired"):
            await spool.seal()
        with pytest.raises(OSError, match="not sealed"):
            await spool.finish()  # never the plaintext instead
        spool.discard()

    asyncio.run(receive())
    threads.shutdown(wait=True)
    assert os.listdir(tmp_dir) == []


def test_a_seal_child_with_the_wrong_aes_key_decrypts_nothing_and_writes_nothing(
        tmp_path: Path, sealer: Sealer) -> None:
    cipher = SpillCipher()
    path = tmp_path / "spill"
    path.write_bytes(spill(cipher, [HEADER, b"Subject: s\r\n\r\n" + MARKER]))
    wrong = SpillCipher(records=cipher.records_written)
    result = subprocess.run(
        [sys.executable, "-m", "onionpost.ingest.seal_child", str(path), f"{path}.pgp",
         str(os.getpid())],
        input=sealer.child_input(wrong), capture_output=True, timeout=60)
    assert (result.returncode, result.stdout) == (65, b"bad-spill\n")
    assert os.listdir(tmp_path) == ["spill"]
    right = subprocess.run(
        [sys.executable, "-m", "onionpost.ingest.seal_child", str(path), f"{path}.pgp",
         str(os.getpid())],
        input=sealer.child_input(cipher), capture_output=True, timeout=60)
    size = (tmp_path / "spill.pgp").stat().st_size
    assert (right.returncode, right.stdout) == (0, b"sealed %d\n" % size)


def spill(cipher: SpillCipher, parts: list[bytes]) -> bytes:
    return b"".join(frame + bytes(text) for frame, text in cipher.records(parts))


def test_the_spill_cipher_round_trips_and_its_key_is_its_own(tmp_path: Path) -> None:
    cipher, other = SpillCipher(), SpillCipher()
    path = tmp_path / "spill"
    path.write_bytes(spill(cipher, [b"one", b"two"]) + spill(cipher, [b"three" * 70_000]))
    assert cipher.open_file(str(path)) == [b"one", b"two", b"three" * 70_000]
    assert b"one" not in path.read_bytes() and b"three" not in path.read_bytes()
    spill(other, [b"x", b"y", b"z"])
    with pytest.raises(InvalidTag):
        other.open_file(str(path))


def test_already_encrypted_mail_is_stored_as_it_came(sealer: Sealer, gpg: GnuPG) -> None:
    armored = gpg.run("--armor", "--encrypt", "--recipient", "owner@x.onion",
                      data=b"hi").stdout.replace(b"\n", b"\r\n")
    message = b"Subject: kept as is\r\n\r\n" + armored
    assert sealer.stored(message) == [message]
