"""Debian's gpg in a throw-away GNUPGHOME: the owner's keys as an owner makes them (v4,
ed25519/cv25519, no passphrase), and the broken keys ingest must refuse."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

PAST = "20200101T000000"  # --faked-system-time: a key made then, valid one day, is expired


@dataclass
class GnuPG:
    home: Path

    def __post_init__(self) -> None:
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)

    def run(self, *args: str, data: bytes = b"", check: bool = True
            ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["gpg", "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "",
             *args], input=data, capture_output=True, check=check, timeout=120,
            env={**os.environ, "GNUPGHOME": str(self.home)})

    def make_key(self, uid: str, algo: str = "future-default", usage: str = "default",
                 expire: str = "never", *extra: str) -> str:
        """A new key (gpg's own defaults: ed25519 primary, cv25519 encryption subkey);
        returns its fingerprint."""
        self.run(*extra, "--quick-gen-key", uid, algo, usage, expire)
        listing = self.run("--with-colons", "--list-keys", uid).stdout.decode()
        return next(line.split(":")[9] for line in listing.splitlines()
                    if line.startswith("fpr:"))

    def export(self, uid: str, armor: bool = True) -> bytes:
        return self.run(*(["--armor"] if armor else []), "--export", uid).stdout

    def export_secret(self, uid: str) -> bytes:
        return self.run("--armor", "--export-secret-keys", uid).stdout

    def revoke(self, fingerprint: str) -> None:
        certificate = self.home / "openpgp-revocs.d" / f"{fingerprint}.rev"
        # gpg writes the certificate with a colon before its armor so it is not imported
        # by accident: remove it, as gpg's own instructions say.
        text = certificate.read_text().replace(":-----BEGIN", "-----BEGIN")
        self.run("--import", data=text.encode())

    def decrypt(self, data: bytes) -> subprocess.CompletedProcess[bytes]:
        return self.run("--decrypt", data=data, check=False)

    def sign_detached(self, uid: str, data: bytes) -> bytes:
        return self.run("--armor", "--local-user", uid, "--detach-sign", data=data).stdout

    def verify_detached(self, signature: Path, data: Path) -> subprocess.CompletedProcess[bytes]:
        return self.run("--verify", str(signature), str(data), check=False)
