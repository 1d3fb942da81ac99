"""The already-encrypted check (pgpmime.already_encrypted: armor, then the first packets) on
big bodies, beside its anchor measured in the same run: pysequoia encrypting the same
message, what ingest does with every message that is not already encrypted.

Run with `python -m bench.pgp_armor` (BENCH_ARMOR_BYTES, default 10000000: the size of the
bodies; BENCH_ROUNDS, default 5: the best of that many runs is shown).
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable

import pysequoia

from onionpost.ingest.pgpmime import already_encrypted
from onionpost.openpgp_packets import CHECKSUM_LIMIT, crc24

HEAD = b"From: a@example.org\r\nSubject: s\r\n"
PGP_MIME = (b"MIME-Version: 1.0\r\nContent-Type: multipart/encrypted;\r\n"
            b" protocol=\"application/pgp-encrypted\"; boundary=\"x\"\r\n\r\n"
            b"--x\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n"
            b"--x\r\nContent-Type: application/octet-stream\r\n\r\n")


def best(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def with_checksum(armored: bytes) -> bytes:
    """pysequoia writes no CRC24 line (RFC 9580 says not to); gpg 2.2 does: add one."""
    lines = armored.strip().split(b"\n")
    data = base64.b64decode(b"".join(lines[2:-1]))
    checksum = b"=" + base64.b64encode(crc24(data).to_bytes(3, "big"))
    return b"\n".join([*lines[:-1], checksum, lines[-1]]) + b"\n"


def bodies(size: int, cert: pysequoia.Cert) -> dict[str, tuple[bytes, bool]]:
    """name -> (message, what already_encrypted must say)."""
    armored = pysequoia.encrypt(os.urandom(size * 3 // 4), [cert]).replace(b"\n", b"\r\n")
    small = pysequoia.encrypt(os.urandom(10_000), [cert]).replace(b"\n", b"\r\n")
    checked = with_checksum(pysequoia.encrypt(os.urandom(CHECKSUM_LIMIT - 200), [cert]))
    begin, end = b"-----BEGIN PGP MESSAGE-----\r\n\r\n", b"-----END PGP MESSAGE-----\r\n"
    return {
        "real inline, 10 KB": (HEAD + b"\r\n" + small, True),
        "real inline, 2 KB, CRC checked": (HEAD + b"\r\n" + checked.replace(b"\n", b"\r\n"),
                                           True),
        "real inline": (HEAD + b"\r\n" + armored, True),
        "real PGP/MIME": (HEAD + PGP_MIME + armored + b"\r\n--x--\r\n", True),
        "clear text between markers": (
            HEAD + b"\r\n" + begin + b"my secret words\r\n" * (size // 17) + end, False),
        "base64 letters between markers": (
            HEAD + b"\r\n" + begin + b"A" * 64 + b"\r\n" + b"B" * 76 * (size // 78) + end,
            False),
    }


def main() -> None:
    size = int(os.environ.get("BENCH_ARMOR_BYTES", "10000000"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    tsk = pysequoia.Tsk.generate("owner@x.onion", profile=pysequoia.Profile.RFC4880)
    cert = tsk.extract_certificate()
    print(f"{'body':<32} {'bytes':>10} {'check ms':>9} {'encrypt ms (anchor)':>20} "
          f"{'check/encrypt':>14}")
    for name, (message, expected) in bodies(size, cert).items():
        assert already_encrypted(message) is expected, name
        check = best(lambda: already_encrypted(message), rounds)  # noqa: B023 (used at once)
        anchor = best(lambda: pysequoia.encrypt(message, [cert]), rounds)  # noqa: B023
        print(f"{name:<32} {len(message):>10} {check * 1000:>9.2f} {anchor * 1000:>20.1f} "
              f"{check / anchor:>13.1%}")


if __name__ == "__main__":
    main()
