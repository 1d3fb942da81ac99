"""The owner's OpenPGP public key: read, checked (ingest, `pgp-key import`), encrypted to."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pysequoia

from onionpost.exits import ConfigError

_PROBE = b"probe"
MAX_KEY_BYTES = 1_000_000  # a public key with many signatures is tens of KB
# Each message is encrypted once per valid encryption subkey (a PKESK each, ~0.1 ms of
# CPU holding the GIL and ~100 bytes): a key with thousands of them would make every small
# message cost a second. A real key has one, a few while rotating.
MAX_RECIPIENTS = 8


class EncryptionError(Exception):
    """A message could not be encrypted: it must not be stored."""


class OwnerKey:
    """A public key fit to encrypt to now: not a secret key, not revoked, not expired, with a
    subkey that may encrypt. Built only through `load`/`parse`, which check all that."""

    def __init__(self, cert: pysequoia.Cert) -> None:
        self._cert = cert
        self.fingerprint = cert.fingerprint.upper()
        expiry = cert.expiration
        self._expires = expiry.timestamp() if expiry is not None else None

    @classmethod
    def load(cls, path: Path) -> OwnerKey:
        """The key in `path` (armored or binary); ConfigError saying what is wrong with it."""
        try:
            with path.open("rb") as file:  # not read_bytes: /dev/zero by mistake never ends
                data = file.read(MAX_KEY_BYTES + 1)
        except OSError as error:
            raise ConfigError(f"{path}: cannot read the OpenPGP key ({error.strerror})") from None
        if len(data) > MAX_KEY_BYTES:
            raise ConfigError(f"{path}: more than {MAX_KEY_BYTES} bytes, not an OpenPGP key")
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: bytes, origin: str) -> OwnerKey:
        try:
            cert = pysequoia.Cert.from_bytes(data)
        except Exception as error:  # pysequoia raises plain exceptions
            raise ConfigError(
                f"{origin}: not an OpenPGP public key ({first_line(error)})") from None
        if _has_secret(cert):
            raise ConfigError(f"{origin}: holds a secret key; give the public key only "
                              "(gpg --armor --export), the server must never hold the secret")
        if cert.is_revoked:
            raise ConfigError(f"{origin}: key {cert.fingerprint.upper()} is revoked")
        key = cls(cert)
        if key.expired():
            raise ConfigError(f"{origin}: key {key.fingerprint} expired on "
                              f"{cert.expiration:%Y-%m-%d}")
        try:
            probe = key.encrypt(_PROBE)
        except EncryptionError as error:
            raise ConfigError(f"{origin}: key {key.fingerprint} cannot encrypt: {error}") from None
        recipients = sum(packet.tag == pysequoia.packet.Tag.PKESK
                         for packet in pysequoia.packet.PacketPile.from_bytes(probe))
        if recipients > MAX_RECIPIENTS:
            raise ConfigError(f"{origin}: key {key.fingerprint} has {recipients} subkeys that may"
                              f" encrypt (at most {MAX_RECIPIENTS}): every message would be"
                              " encrypted to each; expire or remove the unused ones")
        return key

    def expired(self) -> bool:
        return self._expires is not None and self._expires <= time.time()

    def encrypt(self, message: bytes) -> bytes:
        """The message encrypted to the key, ASCII armored (LF line ends)."""
        if self.expired():  # it may expire while ingest runs: fail closed then too
            raise EncryptionError(f"key {self.fingerprint} has expired")
        try:
            return bytes(pysequoia.encrypt(bytes=message, recipients=[self._cert]))
        except Exception as error:
            raise EncryptionError(first_line(error)) from None

    def armored(self) -> bytes:
        """The public key, ASCII armored, as `pgp-key import` stores it."""
        return str(self._cert).encode("ascii")


def _has_secret(cert: pysequoia.Cert) -> bool:
    with warnings.catch_warnings():  # has_secret_keys is deprecated for Tsk, still right here
        warnings.simplefilter("ignore", DeprecationWarning)
        return bool(cert.has_secret_keys)


def first_line(error: Exception) -> str:
    """pysequoia's messages carry a Rust backtrace after the first line."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
