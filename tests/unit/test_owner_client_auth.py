"""Owner keys for client authorization, in tor's file forms."""

from __future__ import annotations

import base64
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from onionpost.tor.client_auth import OwnerKey, service_id

ONION = "lux6itkmc2qhczbli6jwke4cmcemn7dldwhidea3nqfucfdrsjkvldyd"
# 56 base32 characters with a wrong checksum: a mistyped address.
MISTYPED = "pv4ozjdmhrgbmeexr2uu5jelr5sfdrjwgjqsfgmosmxmkcd4oquexoyd"


def _b32decode(text: str) -> bytes:
    return base64.b32decode(text + "=" * (-len(text) % 8))


def test_file_forms_match_tor() -> None:
    key = OwnerKey.generate()
    service = key.service_line()
    client = key.client_line(ONION + ".onion")
    assert re.fullmatch(r"descriptor:x25519:[A-Z2-7]{52}", service)
    assert re.fullmatch(rf"{ONION}:descriptor:x25519:[A-Z2-7]{{52}}", client)
    private = _b32decode(client.rsplit(":", 1)[1])
    derived = X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)
    assert _b32decode(service.rsplit(":", 1)[1]) == derived
    assert base64.b64decode(key.private_b64) == private


def test_keys_differ() -> None:
    assert OwnerKey.generate().private_raw != OwnerKey.generate().private_raw


@pytest.mark.parametrize("bad", ["x.onion", ONION[:-1], ONION.upper() + "1", "", "a" * 56 + ".com",
                                 MISTYPED, MISTYPED + ".onion"])
def test_service_id_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        service_id(bad)


def test_service_id_takes_the_address_with_or_without_onion() -> None:
    assert service_id(ONION) == service_id(f" {ONION.upper()}.onion\n") == ONION
