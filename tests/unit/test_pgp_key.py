"""The owner's key: gpg-made keys accepted (armored or binary) and what encrypts to them
decrypts with gpg 2.2; every unfit key refused with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.gpg import PAST, GnuPG

from onionpost.pgp_key import OwnerKey
from onionpost.settings import ConfigError


@pytest.fixture(scope="module")
def gpg(tmp_path_factory: pytest.TempPathFactory) -> GnuPG:
    keys = GnuPG(tmp_path_factory.mktemp("gnupg") / "home")
    keys.make_key("owner@x.onion")
    keys.make_key("expired@x", "future-default", "default", "1d", "--faked-system-time", PAST)
    keys.make_key("signonly@x", "ed25519", "sign")
    keys.revoke(keys.make_key("revoked@x"))
    return keys


@pytest.mark.parametrize("armor", [True, False])
def test_a_gpg_key_is_accepted_and_gpg_decrypts_what_it_encrypts(
        gpg: GnuPG, tmp_path: Path, armor: bool) -> None:
    path = tmp_path / "owner.key"
    path.write_bytes(gpg.export("owner@x.onion", armor=armor))
    key = OwnerKey.load(path)
    encrypted = key.encrypt(b"exact\r\nbytes\x00\xff")
    assert encrypted.startswith(b"-----BEGIN PGP MESSAGE-----")
    result = gpg.decrypt(encrypted)
    assert result.returncode == 0 and result.stdout == b"exact\r\nbytes\x00\xff"
    assert OwnerKey.parse(key.armored(), "again").fingerprint == key.fingerprint


@pytest.mark.parametrize(("uid", "says"), [
    ("expired@x", "expired on 2020-01-02"),
    ("signonly@x", "cannot encrypt: No suitable encryption subkey"),
    ("revoked@x", "is revoked"),
])
def test_unfit_keys_are_refused(gpg: GnuPG, uid: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as refused:
        OwnerKey.parse(gpg.export(uid), "key.asc")
    assert "\n" not in str(refused.value) and str(refused.value).startswith("key.asc: ")


def test_a_secret_key_is_refused(gpg: GnuPG) -> None:
    with pytest.raises(ConfigError, match="holds a secret key"):
        OwnerKey.parse(gpg.export_secret("owner@x.onion"), "key.asc")


@pytest.mark.parametrize("data", [b"", b"hello", b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n"])
def test_what_is_no_key_is_refused_in_one_line(data: bytes) -> None:
    with pytest.raises(ConfigError, match="not an OpenPGP public key") as refused:
        OwnerKey.parse(data, "key.asc")
    assert "\n" not in str(refused.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the OpenPGP key"):
        OwnerKey.load(tmp_path / "nowhere.asc")
