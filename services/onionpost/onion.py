"""Tor v3 onion addresses (rend-spec-v3 §6): validation and derivation from a public key.

address = base32(pubkey || checksum || version) + ".onion", with
checksum = SHA3-256(".onion checksum" || pubkey || version)[:2] and version = 3.
Pure functions only: no sockets, no files. Whether the 32 bytes are a usable ed25519 point
is left to Tor (it answers SOCKS error 0xF6): a typo is already caught by the checksum.
"""

from __future__ import annotations

import base64
import hashlib

SUFFIX = ".onion"
VERSION = 3
KEY_LENGTH = 32
ADDRESS_LENGTH = 56  # base32 of 32 + 2 + 1 bytes
V2_LENGTH = 16
_CHECKSUM_PREFIX = b".onion checksum"


class InvalidOnionError(ValueError):
    """Why a name is not a valid v3 onion address, in words a user can act on."""


def checksum(public_key: bytes, version: int = VERSION) -> bytes:
    digest = hashlib.sha3_256(_CHECKSUM_PREFIX + public_key + bytes([version])).digest()
    return digest[:2]


def from_public_key(public_key: bytes) -> str:
    """The `<56 chars>.onion` address of an ed25519 public key (32 raw bytes)."""
    if len(public_key) != KEY_LENGTH:
        raise ValueError(f"an ed25519 public key has {KEY_LENGTH} bytes, not {len(public_key)}")
    raw = public_key + checksum(public_key) + bytes([VERSION])
    return base64.b32encode(raw).decode("ascii").lower() + SUFFIX


def public_key(address: str) -> bytes:
    """The ed25519 public key inside a v3 address; raises InvalidOnionError saying what is wrong."""
    name = address.strip().lower().rstrip(".")
    if not name.endswith(SUFFIX):
        raise InvalidOnionError("not an .onion address")
    label = name.removesuffix(SUFFIX)
    if "." in label:
        raise InvalidOnionError("give the onion address itself, without a subdomain")
    if len(label) == V2_LENGTH:
        raise InvalidOnionError("a v2 onion address (16 characters): v2 onion services no longer"
                           " exist, ask for the v3 address (56 characters)")
    if len(label) != ADDRESS_LENGTH:
        raise InvalidOnionError(f"{len(label)} characters before .onion, a v3 onion address has"
                           f" {ADDRESS_LENGTH}")
    try:
        raw = base64.b32decode(label.upper())
    except ValueError:  # binascii.Error, or non-ASCII characters
        raise InvalidOnionError("characters outside base32 (a-z, 2-7)") from None
    key, check, version = raw[:KEY_LENGTH], raw[KEY_LENGTH:-1], raw[-1]
    if version != VERSION:
        raise InvalidOnionError(f"not a version 3 onion address (version byte {version})")
    if check != checksum(key):
        raise InvalidOnionError("wrong checksum in the onion address: a character is mistyped")
    return key


def problem(address: str) -> str | None:
    """None for a valid v3 onion address, else the reason it is not one."""
    try:
        public_key(address)
    except InvalidOnionError as error:
        return str(error)
    return None


def is_valid(address: str) -> bool:
    return problem(address) is None
