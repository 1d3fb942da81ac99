"""Client authorization keys (x25519) for an owner-only onion service, in the file forms tor
reads on each side (tor's client-auth: `<name>.auth` on the service, `<name>.auth_private`
on the client)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from onionpost import onion


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


@dataclass(frozen=True)
class OwnerKey:
    private_raw: bytes
    public_raw: bytes

    @classmethod
    def generate(cls) -> OwnerKey:
        private = X25519PrivateKey.generate()
        return cls(private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
                   private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @property
    def public_b32(self) -> str:
        return _b32(self.public_raw)

    @property
    def private_b64(self) -> str:
        """The form tor's control port takes (ONION_CLIENT_AUTH_ADD ... x25519:<this>)."""
        return base64.b64encode(self.private_raw).decode()

    def service_line(self) -> str:
        """authorized_clients/<name>.auth on the service."""
        return f"descriptor:x25519:{self.public_b32}"

    def client_line(self, address: str) -> str:
        """<ClientOnionAuthDir>/<name>.auth_private on the owner's machine."""
        return f"{service_id(address)}:descriptor:x25519:{_b32(self.private_raw)}"


def service_id(address: str) -> str:
    """The 56 characters of a v3 onion address (given with or without .onion), checksum
    checked; onion.InvalidOnionError (a ValueError) says what is wrong otherwise."""
    label = address.strip().lower().removesuffix(onion.SUFFIX)
    onion.public_key(label + onion.SUFFIX)
    return label
