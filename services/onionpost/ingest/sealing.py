"""Encryption at rest in ingest: a Spool whose message reaches tmp/ only encrypted, first under
a key of its own while it arrives, then to the owner's OpenPGP key at its end (docs/pgp.md)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sys
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING

from onionpost.ingest import delivery as deliveries
from onionpost.ingest.sealed_form import SpillCipher, stored_form, write_new
from onionpost.ingest.spool import Spool
from onionpost.pgp_key import EncryptionError, OwnerKey

if TYPE_CHECKING:
    from onionpost.settings import Settings

# A message held whole in memory up to this size is encrypted on the event loop (about a
# millisecond); a bigger one in the sealing thread, one at a time, which bounds the memory
# the step needs (the message, its armored form) to one message.
INLINE_SEAL_LIMIT = 256 * 1024
# A spilled message over this size is sealed in a child process (ingest/seal_child.py),
# one at a time: pysequoia holds the GIL for a whole encryption, ~10 ms a MB here (110 ms
# for 10 MB when idle, 230 ms under load), and every session of the worker waits meanwhile.
# Up to 1 MiB the hold stays near 10 ms, while a child's start-up (Python and its imports:
# ~50 ms of CPU) would cost five times the seal (docs/benchmarks.md, seal_stall).
PROCESS_SEAL_SIZE = 1024 * 1024


class Sealer:
    """The owner's key and what the stored message shows of itself."""

    def __init__(self, key: OwnerKey, hide_subject: bool,
                 process_size: int = PROCESS_SEAL_SIZE) -> None:
        self.key = key
        self.hide_subject = hide_subject
        self.process_size = process_size
        self.thread: Executor = ThreadPoolExecutor(1, thread_name_prefix="seal")
        self.child_turn = asyncio.Lock()  # one seal child at a time: one big message's memory
        self._child_key = (b"\1" if hide_subject else b"\0") + key.armored()

    @classmethod
    def from_settings(cls, settings: Settings) -> Sealer | None:
        """None without ONIONPOST_PGP_KEY; ConfigError if the key is not fit (fail closed)."""
        if settings.pgp_key is None:
            return None
        return cls(OwnerKey.load(settings.pgp_key), settings.pgp_subject == "hide",
                   settings.pgp_seal_process_size)

    def stored(self, message: bytes) -> list[bytes]:
        """What is stored for the message (after our trace fields). Raises EncryptionError."""
        return stored_form(self.key, message, self.hide_subject)

    def child_input(self, cipher: SpillCipher) -> bytes:
        """What a seal child reads on stdin (ingest/seal_child.py): never argv, never env."""
        return cipher.key + cipher.records_written.to_bytes(4, "big") + self._child_key

    def spool(self, tmp_dir: str, queue_id: str, header: bytes, threads: Executor) -> Spool:
        return SealedSpool(tmp_dir, queue_id, header, threads, self)


class SealedSpool(Spool):
    """A Spool that never writes plaintext: spilled blocks go through a SpillCipher, and
    `seal` turns the whole message into its stored, encrypted form before the delivery."""

    def __init__(self, tmp_dir: str, queue_id: str, header: bytes, threads: Executor,
                 sealer: Sealer) -> None:
        super().__init__(tmp_dir, queue_id, header, threads)
        self._sealer = sealer
        self._header = header  # what a sealed file must start with
        self._cipher: SpillCipher | None = None  # made on the first spill: most never do
        self._child: asyncio.subprocess.Process | None = None
        self._sealed = False

    async def seal(self) -> None:
        """The message in its stored form from now on: `size` is the stored size. Raises
        EncryptionError; a disk error is left in `error`, as a spill's is."""
        if self.error is not None or self._removed:
            return
        loop = asyncio.get_running_loop()
        if self.tmp_name is not None:
            try:
                if self.size > self._sealer.process_size:
                    await self._seal_apart()
                else:
                    await loop.run_in_executor(self._sealer.thread, self._seal_file)
            except OSError as error:
                self.error = error
                return
        elif self.size > INLINE_SEAL_LIMIT:
            await loop.run_in_executor(self._sealer.thread, self._seal_memory)
        else:
            self._seal_memory()
        self._sealed = True

    async def finish(self) -> deliveries.Content:
        if not self._sealed:  # a bug, never a reason to store plaintext
            raise OSError(errno.EIO, "message not sealed")
        if self.tmp_name is None:
            return await super().finish()
        return deliveries.Written(self.tmp_name)

    def discard(self) -> None:
        if self._owned and self._child is not None:  # never outlives its message
            with contextlib.suppress(ProcessLookupError):
                self._child.kill()
        super().discard()

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

    async def _seal_apart(self) -> None:
        """In a seal child, one at a time: the end of the message joins the spill (as
        records), the child reads them and writes the sealed file, which replaces the spill."""
        loop = asyncio.get_running_loop()
        tail, self._tail = self._tail, []
        await loop.run_in_executor(self._threads, self._write, tail)
        async with self._sealer.child_turn:
            if self._removed:
                raise OSError(errno.ECANCELED, "message discarded")
            sealed_path = self._path + ".pgp"
            size = await self._run_child(sealed_path)
            await loop.run_in_executor(self._threads, self._take_sealed, sealed_path, size)

    async def _run_child(self, sealed_path: str) -> int:
        """The stored size the child wrote; EncryptionError or OSError (no file left) if it
        failed, was killed or cancelled (a hang-up, the DATA timeout)."""
        assert self._cipher is not None  # spilled: tmp_name is set
        child = self._child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "onionpost.ingest.seal_child", self._path, sealed_path,
            str(os.getpid()),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        try:
            said, _ = await child.communicate(self._sealer.child_input(self._cipher))
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()  # dead before its file is removed: it writes no more
            _remove(sealed_path)
            raise
        finally:
            self._child = None
        verdict, _, detail = said.decode("ascii", "replace").strip().partition(" ")
        if child.returncode == 0 and verdict == "sealed" and detail.isdigit():
            return int(detail)
        _remove(sealed_path)
        if verdict == "os-error" and detail.isdigit():
            raise OSError(int(detail), os.strerror(int(detail)))
        raise EncryptionError(f"seal child {verdict or 'said nothing'}, exit {child.returncode}")

    def _take_sealed(self, sealed_path: str, size: int) -> None:
        """In the spool's threads: the child's file replaces the spill if it is what the
        child said it wrote (its size, our trace fields first)."""
        with self._lock:
            if self._removed:
                _remove(sealed_path)
                raise OSError(errno.ECANCELED, "message discarded")
            with open(sealed_path, "rb") as sealed:
                whole = os.fstat(sealed.fileno()).st_size == size
                if not whole or sealed.read(len(self._header)) != self._header:
                    _remove(sealed_path)
                    raise EncryptionError("seal child wrote something else than it said")
            self._swap(sealed_path, size)

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
            write_new(sealed_path, stored)
            self._swap(sealed_path, sum(map(len, stored)))

    def _swap(self, sealed_path: str, size: int) -> None:
        """Under the lock: the sealed file is the message's tmp/ file from now on."""
        os.close(self._fd)
        os.unlink(self._path)
        self._fd, self._path, self._tail = -1, sealed_path, []
        self.tmp_name = f"{self.tmp_name}.pgp"
        self.size = size


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


__all__ = ["EncryptionError", "SealedSpool", "Sealer", "SpillCipher"]
