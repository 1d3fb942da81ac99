"""v3 onion addresses: derived from real ed25519 keys, checked against stem's implementation,
and every kind of damage refused with a reason."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from stem.descriptor.hidden_service import HiddenServiceDescriptorV3

from onionpost import onion

BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
# Published v3 addresses (DuckDuckGo, the Tor Project): real keys, real checksums.
KNOWN = ["duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion",
         "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion"]


def random_public_key() -> bytes:
    return Ed25519PrivateKey.generate().public_key().public_bytes_raw()


@pytest.mark.parametrize("address", KNOWN)
def test_published_addresses_are_valid(address: str) -> None:
    assert onion.problem(address) is None
    assert onion.from_public_key(onion.public_key(address)) == address


@settings(max_examples=300)
@given(st.binary(min_size=32, max_size=32))
def test_any_key_gives_a_valid_address_that_stem_agrees_with(key: bytes) -> None:
    address = onion.from_public_key(key)
    assert len(address) == 56 + len(".onion")
    assert onion.is_valid(address)
    assert onion.public_key(address) == key
    assert address == HiddenServiceDescriptorV3.address_from_identity_key(key)


def test_real_ed25519_keys_by_the_hundred() -> None:
    for _ in range(200):
        key = random_public_key()
        address = onion.from_public_key(key)
        assert onion.is_valid(address)
        assert onion.is_valid(address.upper())
        assert onion.public_key(address) == key


@settings(max_examples=400, derandomize=True)
@given(st.binary(min_size=32, max_size=32), st.integers(0, 55), st.integers(1, 31))
def test_one_mistyped_character_is_caught(key: bytes, position: int, shift: int) -> None:
    label = onion.from_public_key(key).removesuffix(".onion")
    replacement = BASE32[(BASE32.index(label[position]) + shift) % 32]
    mutated = label[:position] + replacement + label[position + 1:] + ".onion"
    assert not onion.is_valid(mutated)


@settings(max_examples=200, derandomize=True)
@given(st.binary(min_size=32, max_size=32), st.integers(0, 54))
def test_swapped_neighbours_are_caught(key: bytes, position: int) -> None:
    label = onion.from_public_key(key).removesuffix(".onion")
    if label[position] == label[position + 1]:
        return
    swapped = label[:position] + label[position + 1] + label[position] + label[position + 2:]
    reason = onion.problem(swapped + ".onion") or ""
    assert "checksum" in reason or "version" in reason  # the last 2 characters hold the version


def test_wrong_checksum_says_so() -> None:
    key = random_public_key()
    bad = key + bytes(a ^ 0xFF for a in onion.checksum(key)) + b"\x03"
    address = base64.b32encode(bad).decode().lower() + ".onion"
    assert "checksum" in (onion.problem(address) or "")


def test_other_versions_are_refused() -> None:
    key = random_public_key()
    raw = key + onion.checksum(key, 4) + b"\x04"
    address = base64.b32encode(raw).decode().lower() + ".onion"
    assert "version" in (onion.problem(address) or "")


@pytest.mark.parametrize(("address", "words"), [
    ("expyuzz4wqqyqhjn.onion", "v2 onion address"),
    ("example.org", "not an .onion address"),
    ("onion", "not an .onion address"),
    (".onion", "0 characters"),
    ("abc.onion", "3 characters"),
    ("duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzcza.onion", "55 characters"),
    ("duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczadd.onion", "57 characters"),
    ("duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzcza1.onion", "base32"),
    ("duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczaé.onion", "base32"),
    ("www.duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion", "subdomain"),
    ("duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion.evil.org",
     "not an .onion address"),
])
def test_refusals_name_the_problem(address: str, words: str) -> None:
    reason = onion.problem(address)
    assert reason is not None
    assert words in reason


@settings(max_examples=300)
@given(st.text(max_size=80) | st.text(min_size=56, max_size=56).map(lambda label: label + ".onion"))
def test_arbitrary_text_never_crashes_and_valid_means_derivable(text: str) -> None:
    reason = onion.problem(text)  # the second strategy reaches the base32 decoding
    if reason is None:
        assert onion.from_public_key(onion.public_key(text)) == text.strip().lower().rstrip(".")


def test_a_trailing_dot_and_capitals_are_the_same_address() -> None:
    address = onion.from_public_key(random_public_key())
    assert onion.public_key(address.upper() + ".") == onion.public_key(address)


def test_a_key_must_have_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        onion.from_public_key(b"\x00" * 31)
