"""What ingest and its seal child (ingest/seal_child.py) share to seal a spilled message: the
AES-GCM records it was spilled as, its stored form, the new file. Light to import (no asyncio):
the child's start-up is part of every big message's seal."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from onionpost.ingest import pgpmime
from onionpost.pgp_key import OwnerKey

KEY_SIZE = 32  # AES-256
_LENGTH, _NONCE, _TAG = 4, 12, 16
_THREAD = threading.local()


def stored_form(key: OwnerKey, message: bytes, hide_subject: bool) -> list[bytes]:
    """What is stored for the message (after our trace fields). Raises EncryptionError."""
    if pgpmime.already_encrypted(message):
        return [message]
    return pgpmime.wrap(message, key.encrypt(message), hide_subject)


class SpillCipher:
    """AES-256-GCM under a key made for one message and held only in memory: each block a
    message spills to tmp/ while it arrives is a record (length, nonce, ciphertext)."""

    def __init__(self, key: bytes | None = None, records: int = 0) -> None:
        self.key = key if key is not None else AESGCM.generate_key(256)
        self._aead = AESGCM(self.key)
        self.records_written = records

    def records(self, parts: list[bytes]) -> Iterator[tuple[bytes, memoryview]]:
        """Each part as (frame, ciphertext). The ciphertext lives in a buffer of this thread
        that the next record reuses (no allocation per block, which with many sessions
        spilling at once left memory behind in the threads' malloc arenas): write it first."""
        for part in parts:
            nonce = self.records_written.to_bytes(_NONCE, "big")  # a counter: the key is ours
            self.records_written += 1
            ciphertext = _buffer(len(part) + _TAG)
            self._aead.encrypt_into(nonce, part, None, ciphertext)
            yield (_NONCE + len(ciphertext)).to_bytes(_LENGTH, "big") + nonce, ciphertext

    def open_file(self, path: str) -> list[bytes]:
        """Every record of the file, decrypted, in order. Raises InvalidTag if one is not
        what this cipher wrote (altered, cut short, another message's)."""
        with open(path, "rb") as spilled:
            parts = []
            for _ in range(self.records_written):
                size = int.from_bytes(spilled.read(_LENGTH), "big")
                record = spilled.read(size)
                parts.append(self._aead.decrypt(record[:_NONCE], record[_NONCE:], None))
        return parts


def _buffer(size: int) -> memoryview:
    buffer: bytearray | None = getattr(_THREAD, "buffer", None)
    if buffer is None or len(buffer) < size:
        buffer = _THREAD.buffer = bytearray(max(size, 256 * 1024))
    return memoryview(buffer)[:size]


def write_new(path: str, parts: list[bytes]) -> None:
    """A new file (never an existing one), private, holding the parts; removed on failure."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        for part in parts:
            view = memoryview(part)
            while view:
                view = view[os.write(fd, view):]
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    finally:
        os.close(fd)
