"""Encryption at rest in ingest: a Spool whose message reaches tmp/ only encrypted, first under
a key of its own while it arrives, then to the owner's OpenPGP key at its end (docs/pgp.md)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from onionpost.ingest import delivery as deliveries
from onionpost.ingest import pgpmime
from onionpost.ingest.spool import Spool
from onionpost.pgp_key import EncryptionError, OwnerKey

if TYPE_CHECKING:
    from onionpost.settings import Settings

# A message held whole in memory up to this size is encrypted on the event loop (about a
# millisecond); a bigger one in the sealing thread, one at a time, which bounds the memory
# the step needs (the message, its armored form) to one message.
INLINE_SEAL_LIMIT = 256 * 1024
_LENGTH, _NONCE, _TAG = 4, 12, 16
_THREAD = threading.local()


class Sealer:
    """The owner's key and what the stored message shows of itself."""

    def __init__(self, key: OwnerKey, hide_subject: bool) -> None:
        self.key = key
        self.hide_subject = hide_subject
        self.thread: Executor = ThreadPoolExecutor(1, thread_name_prefix="seal")

    @classmethod
    def from_settings(cls, settings: Settings) -> Sealer | None:
        """None without ONIONPOST_PGP_KEY; ConfigError if the key is not fit (fail closed)."""
        if settings.pgp_key is None:
            return None
        return cls(OwnerKey.load(settings.pgp_key), settings.pgp_subject == "hide")

    def stored(self, message: bytes) -> list[bytes]:
        """What is stored for the message (after our trace fields). Raises EncryptionError."""
        if pgpmime.already_encrypted(message):
            return [message]
        return pgpmime.wrap(message, self.key.encrypt(message), self.hide_subject)

    def spool(self, tmp_dir: str, queue_id: str, header: bytes, threads: Executor) -> Spool:
        return SealedSpool(tmp_dir, queue_id, header, threads, self)


class SpillCipher:
    """AES-256-GCM under a key made for one message and held only in memory: each block a
    message spills to tmp/ while it arrives is a record (length, nonce, ciphertext)."""

    def __init__(self) -> None:
        self._aead = AESGCM(AESGCM.generate_key(256))
        self._records = 0

    def records(self, parts: list[bytes]) -> Iterator[tuple[bytes, memoryview]]:
        """Each part as (frame, ciphertext). The ciphertext lives in a buffer of this thread
        that the next record reuses (no allocation per block, which with many sessions
        spilling at once left memory behind in the threads' malloc arenas): write it first."""
        for part in parts:
            nonce = self._records.to_bytes(_NONCE, "big")  # a counter: the key is this one's
            self._records += 1
            ciphertext = _buffer(len(part) + _TAG)
            self._aead.encrypt_into(nonce, part, None, ciphertext)
            yield (_NONCE + len(ciphertext)).to_bytes(_LENGTH, "big") + nonce, ciphertext

    def open_file(self, path: str) -> list[bytes]:
        """Every record of the file, decrypted, in order."""
        with open(path, "rb") as spilled:
            parts = []
            for _ in range(self._records):
                size = int.from_bytes(spilled.read(_LENGTH), "big")
                record = spilled.read(size)
                parts.append(self._aead.decrypt(record[:_NONCE], record[_NONCE:], None))
        return parts


def _buffer(size: int) -> memoryview:
    buffer: bytearray | None = getattr(_THREAD, "buffer", None)
    if buffer is None or len(buffer) < size:
        buffer = _THREAD.buffer = bytearray(max(size, 256 * 1024))
    return memoryview(buffer)[:size]


class SealedSpool(Spool):
    """A Spool that never writes plaintext: spilled blocks go through a SpillCipher, and
    `seal` turns the whole message into its stored, encrypted form before the delivery."""

    def __init__(self, tmp_dir: str, queue_id: str, header: bytes, threads: Executor,
                 sealer: Sealer) -> None:
        super().__init__(tmp_dir, queue_id, header, threads)
        self._sealer = sealer
        self._cipher: SpillCipher | None = None  # made on the first spill: most never do
        self._sealed = False

    async def seal(self) -> None:
        """The message in its stored form from now on: `size` is the stored size. Raises
        EncryptionError; a disk error is left in `error`, as a spill's is."""
        if self.error is not None or self._removed:
            return
        if self.tmp_name is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._sealer.thread, self._seal_file)
            except OSError as error:
                self.error = error
                return
        elif self.size > INLINE_SEAL_LIMIT:
            await asyncio.get_running_loop().run_in_executor(
                self._sealer.thread, self._seal_memory)
        else:
            self._seal_memory()
        self._sealed = True

    async def finish(self) -> deliveries.Content:
        if not self._sealed:  # a bug, never a reason to store plaintext
            raise OSError(errno.EIO, "message not sealed")
        if self.tmp_name is None:
            return await super().finish()
        return deliveries.Written(self.tmp_name)

    def _write(self, parts: list[bytes]) -> None:
        if self._cipher is None:  # writes of one spool run one at a time
            self._cipher = SpillCipher()
        for frame, ciphertext in self._cipher.records(parts):
            # Spool writes any buffer; its list[bytes] is what its own callers pass.
            super()._write([frame, ciphertext])  # type: ignore[list-item]

    def _seal_memory(self) -> None:
        header, *content = self._tail  # our trace fields are the first part, on their own
        self._tail = [header, *self._sealer.stored(b"".join(content))]
        self.size = sum(map(len, self._tail))

    def _seal_file(self) -> None:
        """In the sealing thread: the spilled records and the in-memory end, encrypted to
        the owner's key into a new tmp/ file that replaces the spill file."""
        with self._lock:
            if self._removed:
                raise OSError(errno.ECANCELED, "message discarded")
            assert self._cipher is not None  # spilled: tmp_name is set
            header, *parts = self._cipher.open_file(self._path)
        message = b"".join([*parts, *self._tail])
        del parts  # one copy of the message, not two, while it is encrypted
        stored = [header, *self._sealer.stored(message)]
        del message
        sealed_path = self._path + ".pgp"
        with self._lock:
            if self._removed:
                raise OSError(errno.ECANCELED, "message discarded")
            fd = os.open(sealed_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                for part in stored:
                    view = memoryview(part)
                    while view:
                        view = view[os.write(fd, view):]
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(sealed_path)
                raise
            finally:
                os.close(fd)
            os.close(self._fd)
            os.unlink(self._path)
            self._fd, self._path, self._tail = -1, sealed_path, []
            self.tmp_name = f"{self.tmp_name}.pgp"
            self.size = sum(map(len, stored))


__all__ = ["EncryptionError", "SealedSpool", "Sealer"]
