"""Owner keys for client authorization, in tor's file forms."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

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


def test_command_refuses_a_mistyped_address(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "onionpost", "owner-key", "new", "laptop", "--onion", MISTYPED,
         "--client-dir", str(tmp_path / "auth")], capture_output=True, text=True)
    assert result.returncode == 64
    assert "wrong checksum in the onion address" in result.stderr
    assert not (tmp_path / "auth").exists()


def test_command_writes_both_files(tmp_path: Path) -> None:
    hs_dir = tmp_path / "hs"
    hs_dir.mkdir(mode=0o700)
    (hs_dir / "hostname").write_text(ONION + ".onion\n")
    result = subprocess.run(
        [sys.executable, "-m", "onionpost", "owner-key", "new", "laptop", "--hs-dir",
         str(hs_dir), "--client-dir", str(tmp_path / "auth")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    auth = hs_dir / "authorized_clients" / "laptop.auth"
    private = tmp_path / "auth" / "laptop.auth_private"
    assert auth.read_text().startswith("descriptor:x25519:")
    assert private.read_text().startswith(ONION + ":descriptor:x25519:")
    assert private.stat().st_mode & 0o077 == 0
    assert private.read_text() not in result.stdout  # the secret is not echoed


def test_command_needs_an_address() -> None:
    result = subprocess.run([sys.executable, "-m", "onionpost", "owner-key", "new", "laptop"],
                            capture_output=True, text=True)
    assert result.returncode == 64
    assert "--onion or --hs-dir" in result.stderr
