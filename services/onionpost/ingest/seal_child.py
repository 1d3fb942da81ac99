"""The seal of one big message apart from ingest's process (`python -m
onionpost.ingest.seal_child SPILL SEALED INGEST_PID`): pysequoia holds the GIL for a whole
encryption, which in ingest froze every session of the worker (docs/pgp.md). The message's
AES key, its record count and the owner's key come on stdin, never in argv or the
environment; the child reads the spill itself and writes the sealed file; one stdout line
says how it went."""

from __future__ import annotations

import signal
import sys

from onionpost.child import die_with_parent
from onionpost.exits import EX_DATAERR, EX_IOERR, EX_SOFTWARE  # for a human: ingest reads stdout

if __name__ == "__main__":  # before the imports below: ~50 ms in which ingest may die
    die_with_parent(signal.SIGKILL, parent=int(sys.argv[3]))

import pysequoia
from cryptography.exceptions import InvalidTag

from onionpost.ingest.sealed_form import KEY_SIZE, SpillCipher, stored_form, write_new
from onionpost.pgp_key import EncryptionError, OwnerKey


def request(data: bytes) -> tuple[SpillCipher, bool, OwnerKey]:
    """stdin: the AES key, the record count (4 bytes), hide_subject (1 byte), the owner's
    key (the one ingest checked at its start: a key file rotated since is not read)."""
    key, rest = data[:KEY_SIZE], data[KEY_SIZE:]
    records, hide, cert = int.from_bytes(rest[:4], "big"), rest[4:5] == b"\1", rest[5:]
    return SpillCipher(key, records), hide, OwnerKey(pysequoia.Cert.from_bytes(cert))


def seal(spill_path: str, sealed_path: str, data: bytes) -> int:
    """The stored size; what SealedSpool._seal_file does in ingest's thread, apart."""
    cipher, hide_subject, owner_key = request(data)
    del data
    header, *parts = cipher.open_file(spill_path)
    message = b"".join(parts)
    del parts  # one copy of the message, not two, while it is encrypted
    stored = [header, *stored_form(owner_key, message, hide_subject)]
    del message
    write_new(sealed_path, stored)
    return sum(map(len, stored))


def main() -> int:
    spill_path, sealed_path = sys.argv[1:3]
    try:
        size = seal(spill_path, sealed_path, sys.stdin.buffer.read())
    except OSError as error:
        print(f"os-error {error.errno or 0}", flush=True)
        return EX_IOERR
    except InvalidTag:
        print("bad-spill", flush=True)
        return EX_DATAERR
    except EncryptionError as error:
        print(f"encrypt-error {error}", flush=True)
        return EX_SOFTWARE
    print(f"sealed {size}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
