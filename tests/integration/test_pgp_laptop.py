"""The owner's key on the laptop with Debian's gpg: `onionpost pgp init`, `onionpost contacts
add --key` and what `onionpost neomutt-config` makes of them, read back by neomutt itself."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.gpg import PAST, GnuPG

from onionpost import onion
from onionpost.pgp_key import OwnerKey

BIN = Path(sys.executable).parent
OURS = onion.from_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
FRANK = f"frank@{onion.from_public_key(bytes(32))}"
FRANK_PATTERN = '"^' + FRANK.replace(".", "\\\\.") + '\\$"'  # as the config writes it
# A pinentry as the owner at the keyboard: it answers every GETPIN with one passphrase.
PINENTRY = """#!/bin/sh
echo "OK ready"
while read -r line; do
  case "$line" in
    GETPIN*) echo "D owner's passphrase"; echo OK ;;
    BYE*) echo OK; exit 0 ;;
    *) echo OK ;;
  esac
done
"""


class Laptop:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.gnupg = home / ".gnupg"
        self.gnupg.mkdir(parents=True, mode=0o700)
        self.env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(home), "GNUPGHOME":
                    str(self.gnupg), "ONIONPOST_DOMAIN": OURS,
                    "ONIONPOST_ADDRESS_BOOK": str(home / "contacts")}

    def run(self, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "onionpost"), *argv], capture_output=True, text=True,
                              timeout=300, check=False, cwd=self.home, env={**self.env, **env})

    def gpg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["gpg", "--batch", "--no-tty", *args], capture_output=True,
                              text=True, timeout=120, check=False, env=self.env, input="")

    def neomutt_values(self, config: str, *names: str) -> dict[str, str]:
        path = self.home / "neomuttrc"
        path.write_text(config)
        args = ["neomutt", "-n", "-F", str(path)]
        for name in names:
            args += ["-Q", name]
        result = subprocess.run(args, capture_output=True, text=True, timeout=30,
                                env=self.env, check=False)
        assert result.returncode == 0, result.stderr
        pairs = (line.removeprefix("set ").split("=", 1) for line in result.stdout.splitlines())
        return {name.strip(): value.strip().strip('"') for name, value in pairs}


@pytest.fixture
def laptop(tmp_path: Path) -> Iterator[Laptop]:
    machine = Laptop(tmp_path / "home")
    yield machine
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=machine.env, check=False)


def init(laptop: Laptop, *argv: str, **env: str) -> str:
    made = laptop.run("pgp", "init", "--no-passphrase", *argv, **env)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def test_init_makes_a_v4_ed25519_cv25519_key_and_the_public_file(laptop: Laptop) -> None:
    fingerprint = init(laptop)
    assert len(fingerprint) == 40
    exported = laptop.home / "owner.asc"
    packets = laptop.gpg("--list-packets", str(exported)).stdout
    assert "secret" not in packets  # the public half only goes to the server
    assert packets.count(":public key packet:") == 1
    assert packets.count(":public sub key packet:") == 1
    assert packets.count("version 4, algo 22") == 1  # EdDSA (ed25519), v4 for gpg 2.2
    assert packets.count("version 4, algo 18") == 1  # ECDH (cv25519)
    assert f"user ID packet: \"anon@{OURS}\"" in packets
    assert OwnerKey.load(exported).fingerprint == fingerprint  # what ingest accepts
    listing = laptop.gpg("--with-colons", "--list-secret-keys").stdout
    assert f"fpr:::::::::{fingerprint}:" in listing


def test_init_again_keeps_the_key_and_new_rotates(laptop: Laptop) -> None:
    first = init(laptop)
    assert init(laptop) == first
    second = init(laptop, "--new", "--out", "next.asc")
    assert second != first
    assert OwnerKey.load(laptop.home / "next.asc").fingerprint == second
    config = laptop.run("neomutt-config")
    assert laptop.neomutt_values(config.stdout, "pgp_default_key")["pgp_default_key"] == second


def test_init_takes_onionpost_from(laptop: Laptop) -> None:
    init(laptop, ONIONPOST_FROM="ann")
    uids = laptop.gpg("--with-colons", "--list-keys").stdout
    assert f"::ann@{OURS}::" in uids and "anon@" not in uids


def test_without_no_passphrase_the_key_is_locked_by_what_pinentry_gave(
        laptop: Laptop, tmp_path: Path) -> None:
    pinentry = tmp_path / "pinentry"
    pinentry.write_text(PINENTRY)
    pinentry.chmod(0o755)
    (laptop.gnupg / "gpg-agent.conf").write_text(f"pinentry-program {pinentry}\n")
    made = laptop.run("pgp", "init")
    assert made.returncode == 0, made.stderr
    assert "gpg asks for its passphrase" in made.stderr
    unlock = ("--pinentry-mode", "loopback", "--passphrase")
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=laptop.env, check=True)  # no cache
    assert laptop.gpg(*unlock, "", "--clear-sign").returncode != 0
    assert "BEGIN PGP SIGNATURE" in laptop.gpg(*unlock, "owner's passphrase", "--clear-sign"
                                               ).stdout


def test_neomutt_config_signs_with_the_key_and_encrypts_opportunistically(
        laptop: Laptop) -> None:
    fingerprint = init(laptop)
    config = laptop.run("neomutt-config")
    assert config.returncode == 0, config.stderr
    earlier = f"set header_cache = {laptop.home / 'cache'}\n"  # e.g. in the owner's neomuttrc
    values = laptop.neomutt_values(
        earlier + config.stdout, "crypt_use_gpgme", "pgp_default_key", "pgp_sign_as",
        "crypt_auto_sign", "crypt_opportunistic_encrypt", "crypt_verify_sig",
        "crypt_protected_headers_read",
        "crypt_protected_headers_write", "crypt_protected_headers_save", "autocrypt",
        "header_cache", "pgp_self_encrypt", "crypt_confirm_hook")
    assert values == {
        "crypt_use_gpgme": "yes", "pgp_default_key": fingerprint, "pgp_sign_as": fingerprint,
        "crypt_auto_sign": "yes", "crypt_opportunistic_encrypt": "yes",
        "crypt_verify_sig": "yes", "crypt_protected_headers_read": "yes",
        "crypt_protected_headers_write": "yes", "crypt_protected_headers_save": "no",
        "autocrypt": "no", "header_cache": "", "pgp_self_encrypt": "yes",
        "crypt_confirm_hook": "no"}


def test_neomutt_config_without_a_key_says_to_make_one(laptop: Laptop) -> None:
    config = laptop.run("neomutt-config")
    assert config.returncode == 0, config.stderr
    assert "run `onionpost pgp init`" in config.stderr
    values = laptop.neomutt_values(config.stdout, "crypt_auto_sign", "pgp_default_key")
    assert values == {"crypt_auto_sign": "no", "pgp_default_key": ""}


@pytest.fixture
def frank(tmp_path: Path) -> Iterator[GnuPG]:
    keys = GnuPG(tmp_path / "frank-gnupg")
    yield keys
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], check=False,
                   env={**os.environ, "GNUPGHOME": str(keys.home)})


def test_contacts_add_key_imports_it_and_binds_the_address(laptop: Laptop, frank: GnuPG,
                                                            tmp_path: Path) -> None:
    fingerprint = frank.make_key(FRANK)
    key_file = tmp_path / "frank.asc"
    key_file.write_bytes(frank.export(FRANK))
    added = laptop.run("contacts", "add", "frank", FRANK, "--key", str(key_file))
    assert added.returncode == 0, added.stderr
    assert added.stderr == ""
    assert f"fpr:::::::::{fingerprint}:" in laptop.gpg("--with-colons", "--list-keys").stdout
    assert laptop.run("contacts", "list").stdout == f"frank {FRANK} {fingerprint}\n"
    config = laptop.run("neomutt-config").stdout
    assert f"crypt-hook {FRANK_PATTERN} {fingerprint}\n" in config
    assert laptop.neomutt_values(config, "crypt_opportunistic_encrypt")
    assert laptop.run("contacts", "add", "frank", FRANK).returncode == 0  # again, no key
    assert "\ncrypt-hook " not in laptop.run("neomutt-config").stdout


def test_a_key_naming_another_address_is_taken_with_a_note(laptop: Laptop, frank: GnuPG,
                                                           tmp_path: Path) -> None:
    fingerprint = frank.make_key("Frank <frank@example.org>")
    key_file = tmp_path / "frank.asc"
    key_file.write_bytes(frank.export(fingerprint))
    added = laptop.run("contacts", "add", "frank", FRANK, "--key", str(key_file))
    assert added.returncode == 0, added.stderr
    assert f"do not name {FRANK}" in added.stderr
    assert f"crypt-hook {FRANK_PATTERN} {fingerprint}\n" in laptop.run("neomutt-config").stdout


def _broken_keys(keys: GnuPG, tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    sign_only = keys.make_key("sign@x", "ed25519", "sign")
    keys.make_key("expired@x", "future-default", "default", "1d", "--faked-system-time", PAST)
    keys.make_key("two@x")
    return {
        "garbage": (b"not a key\n", "not an OpenPGP key"),
        "sign only": (keys.export(sign_only), "cannot encrypt"),
        "expired": (keys.export("expired@x"), "cannot encrypt"),
        "two keys": (keys.export("two@x") + keys.export(sign_only), "found 2"),
        "secret": (keys.export_secret("two@x"), "a secret key"),
        "too big": (b"x" * 1_000_001, "not one public key"),
    }


def test_unusable_key_files_are_refused_and_nothing_changes(laptop: Laptop, frank: GnuPG,
                                                            tmp_path: Path) -> None:
    for case, (data, words) in _broken_keys(frank, tmp_path).items():
        key_file = tmp_path / "key"
        key_file.write_bytes(data)
        added = laptop.run("contacts", "add", "frank", FRANK, "--key", str(key_file))
        assert added.returncode == 65, case
        assert words in added.stderr, (case, added.stderr)
    missing = laptop.run("contacts", "add", "frank", FRANK, "--key", str(tmp_path / "none"))
    assert missing.returncode == 65 and "cannot read" in missing.stderr
    assert not (laptop.home / "contacts").exists()
    assert laptop.gpg("--with-colons", "--list-keys").stdout.count("pub:") == 0


def test_pgp_usage_and_an_unknown_onion(laptop: Laptop) -> None:
    assert laptop.run("pgp").returncode == 64
    assert laptop.run("pgp", "frobnicate").returncode == 64
    unknown = laptop.run("pgp", "init", "--no-passphrase", ONIONPOST_DOMAIN="",
                         ONIONPOST_ONION_HOSTNAME_FILE=str(laptop.home / "none"))
    assert unknown.returncode == 78 and "ONIONPOST_DOMAIN" in unknown.stderr, unknown.stderr
    assert not (laptop.home / "owner.asc").exists()
