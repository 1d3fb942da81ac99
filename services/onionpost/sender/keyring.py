"""The laptop's GnuPG keyring, through gpg: the owner's key (`onionpost pgp init`) and the
contacts' keys (`onionpost contacts add --key`). gpg, not pysequoia, because neomutt reads this
same keyring through GPGME, and gpg 2.2 cannot use the RFC 9580 keys pysequoia makes. The
keyring is gpg's own choice (GNUPGHOME, else ~/.gnupg), as it is for neomutt."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

from onionpost.exits import EX_DATAERR, EX_SOFTWARE, EX_UNAVAILABLE, CommandError

# --batch: gpg asks nothing itself (a passphrase, if any, comes from gpg-agent's pinentry).
# No keyserver, no WKD: nothing here ever leaves the machine.
GPG = ("gpg", "--batch", "--no-tty", "--no-auto-key-retrieve", "--auto-key-locate", "local")
NO_PASSPHRASE = ("--pinentry-mode", "loopback", "--passphrase", "")


@dataclass
class Key:
    """One certificate as `gpg --with-colons` lists it."""

    fingerprint: str = ""
    user_ids: list[str] = field(default_factory=list)
    capabilities: str = ""  # the whole key's usable ones in capitals: "ESC"
    validity: str = ""      # "e" expired, "r" revoked, "i" invalid
    created: int = 0
    secret: bool = False

    @property
    def usable(self) -> bool:
        return self.validity not in ("e", "r", "i", "d")

    @property
    def can_encrypt(self) -> bool:
        return self.usable and "E" in self.capabilities

    @property
    def can_sign(self) -> bool:
        return self.usable and "S" in self.capabilities

    def names(self, address: str) -> bool:
        """Does one of its user ids carry this address (`Name <addr>` or a bare `addr`)?"""
        wanted = address.lower()
        return any(uid.lower() == wanted or uid.lower().endswith(f"<{wanted}>")
                   for uid in self.user_ids)


def parse_listing(text: str) -> list[Key]:
    """Keys from `gpg --with-colons` output (pub/sec start a key; sub-key lines are skipped)."""
    keys: list[Key] = []
    for line in text.splitlines():
        fields = line.split(":")
        if fields[0] in ("pub", "sec"):
            keys.append(Key(capabilities=fields[11], validity=fields[1],
                            created=int(fields[5] or 0), secret=fields[0] == "sec"))
        elif fields[0] == "fpr" and keys and not keys[-1].fingerprint:
            keys[-1].fingerprint = fields[9]
        elif fields[0] == "uid" and keys:
            keys[-1].user_ids.append(fields[9].replace("\\x3a", ":"))
    return keys


def gpg(*args: str, data: bytes = b"", extra: tuple[str, ...] = ()
        ) -> subprocess.CompletedProcess[bytes]:
    """Run gpg; a missing gpg is a clear error, not a traceback."""
    try:
        return subprocess.run([*GPG, *extra, *args], input=data, capture_output=True,
                              check=False, timeout=300, env=_environment())
    except FileNotFoundError:
        raise CommandError(EX_UNAVAILABLE, "gpg is not installed (apt-get install gnupg)"
                           ) from None


def _environment() -> dict[str, str]:
    """pinentry-curses needs to know the terminal; gpg's manual says to set GPG_TTY."""
    env = dict(os.environ)
    if "GPG_TTY" not in env and os.isatty(0):
        env["GPG_TTY"] = os.ttyname(0)
    return env


def _checked(result: subprocess.CompletedProcess[bytes], what: str, code: int = EX_SOFTWARE
             ) -> bytes:
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        raise CommandError(code, f"{what}: {detail[-1] if detail else 'gpg failed'}")
    return result.stdout


def secret_keys(address: str) -> list[Key]:
    """The usable secret keys whose user id carries `address`, newest first. Keys made in
    the same second (pgp init --new right after init) are told apart by gpg's listing
    order, which is the order they entered the keyring."""
    result = gpg("--with-colons", "--list-secret-keys", "--", f"<{address}>")
    keys = parse_listing(result.stdout.decode(errors="replace")) if result.returncode == 0 else []
    matching = [key for key in keys if key.usable and key.names(address)]
    ranked = sorted(enumerate(matching), key=lambda pair: (pair[1].created, pair[0]),
                    reverse=True)
    return [key for _, key in ranked]


def owner_key(address: str) -> Key | None:
    """The key `pgp init` made (or found) for `address`: the newest that signs and encrypts."""
    return next((key for key in secret_keys(address) if key.can_sign and key.can_encrypt),
                None)


def generate(address: str, passphrase: bool) -> str:
    """A new v4 key for `address`: ed25519 to sign and certify, a cv25519 subkey to encrypt,
    no expiry (an expired key would stop the server's ingest). Returns its fingerprint."""
    extra = () if passphrase else NO_PASSPHRASE
    # --yes: with --new, another key for the same address (rotation) is wanted.
    made = gpg("--status-fd", "1", "--yes", "--quick-gen-key", address, "ed25519", "sign,cert",
               "never", extra=extra)
    status = _checked(made, "gpg could not make the key").decode()
    fingerprint = next((line.split()[-1] for line in status.splitlines()
                        if line.startswith("[GNUPG:] KEY_CREATED")), "")
    if not fingerprint:
        raise CommandError(EX_SOFTWARE, "gpg made no key (no KEY_CREATED status)")
    _checked(gpg("--quick-add-key", fingerprint, "cv25519", "encr", "never", extra=extra),
             "gpg could not add the encryption subkey")
    return fingerprint


def export(fingerprint: str) -> bytes:
    """The public key, armored: what the server gets (`onionpost pgp-key import`)."""
    return _checked(gpg("--armor", "--export-options", "export-minimal", "--export",
                        fingerprint), "gpg could not export the key")


def inspect(data: bytes) -> list[Key]:
    """The certificates in a key file, without importing them."""
    shown = gpg("--with-colons", "--import-options", "show-only", "--import", data=data)
    return parse_listing(_checked(shown, "not an OpenPGP key", EX_DATAERR).decode(errors="replace"))


def import_key(data: bytes) -> None:
    _checked(gpg("--import", data=data), "gpg could not import the key", EX_DATAERR)
