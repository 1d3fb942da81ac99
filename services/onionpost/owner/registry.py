"""Who may use the owner onion, on the server: tor's `authorized_clients/NAME.auth` and the
owner sshd's forced-command keys, changed together; a lock entry keeps client auth on."""

from __future__ import annotations

import base64
import binascii
import fcntl
import os
import re
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from onionpost import maildir
from onionpost.exits import (
    EX_CANTCREAT,
    EX_DATAERR,
    EX_NOUSER,
    EX_UNAVAILABLE,
    EX_USAGE,
    CommandError,
)
from onionpost.tor.client_auth import OwnerKey, service_id

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
# tor turns client authorization OFF when authorized_clients/ holds no .auth file: the owner
# onion would be public. This entry (a public key whose private half was never stored) is
# never removed, so the directory is never empty. Not a valid owner name (leading "_").
LOCK_FILE = "_lock.auth"
_KEY_TYPES = ("ssh-ed25519", "sk-ssh-ed25519@openssh.com", "ecdsa-sha2-nistp256",
              "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")


@dataclass(frozen=True)
class Owner:
    name: str
    added: datetime | None  # when NAME.auth was written; None: an ssh key only
    has_ssh_key: bool


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise CommandError(EX_USAGE, f"NAME must be 1-32 of a-z, 0-9 and -, starting with a"
                                     f" letter or digit (got {name!r})")
    return name


def parse_ssh_key(text: str) -> str:
    """'TYPE BASE64 [comment]' -> 'TYPE BASE64', the blob checked to be of that type."""
    words = text.split()
    if len(words) < 2 or words[0] not in _KEY_TYPES:
        raise CommandError(EX_DATAERR, "--ssh-key: not an OpenSSH public key (expected"
                                       " 'ssh-ed25519 AAAA... comment', a .pub file's line)")
    try:
        blob = base64.b64decode(words[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        inner = blob[4:4 + length].decode()
    except (binascii.Error, struct.error, UnicodeDecodeError):
        inner = ""
    if inner != words[0]:
        raise CommandError(EX_DATAERR, "--ssh-key: the key's data is damaged (copy the whole"
                                       " line of the .pub file)")
    return f"{words[0]} {words[1]}"


def ssh_key_line(command: str, public_key: str, name: str) -> str:
    """An authorized_keys line that can only run `command` (restrict: no pty, forwarding or
    ~/.ssh/rc); the comment names the owner, so `remove` finds it."""
    escaped = command.replace("\\", "\\\\").replace('"', '\\"')
    return f'restrict,command="{escaped}" {public_key} {name}'


def _line_owner(line: str) -> tuple[str, str] | None:
    """(name, 'TYPE BASE64') of a line `ssh_key_line` wrote, else None."""
    if not line.startswith("restrict,command="):
        return None
    words = line.rsplit(None, 3)
    if len(words) != 4 or not _NAME.fullmatch(words[3]):
        return None
    return words[3], f"{words[1]} {words[2]}"


class OwnerAccess:
    """The owner onion's HiddenServiceDir and the owner sshd's AuthorizedKeysFile."""

    def __init__(self, onion_dir: Path, ssh_keys: Path) -> None:
        self.onion_dir = onion_dir
        self.clients = onion_dir / "authorized_clients"
        self.ssh_keys = ssh_keys

    def address(self) -> str:
        hostname = self.onion_dir / "hostname"
        try:
            return service_id(hostname.read_text()) + ".onion"
        except OSError as error:
            raise CommandError(EX_UNAVAILABLE, f"{hostname}: {error.strerror} (tor writes it"
                               " when it first publishes the owner onion)") from None
        except ValueError as error:
            raise CommandError(EX_UNAVAILABLE, f"{hostname}: {error}") from None

    def ensure_lock(self) -> None:
        """authorized_clients/ exists and is never empty (see LOCK_FILE)."""
        if not self.clients.is_dir():
            self.clients.mkdir(mode=0o700, parents=True)
            if os.geteuid() == 0:
                owner = self.onion_dir.stat()
                os.chown(self.clients, owner.st_uid, owner.st_gid)
        lock = self.clients / LOCK_FILE
        if not lock.exists():
            maildir.write_private(lock, OwnerKey.generate().service_line().encode() + b"\n",
                                  like=self.onion_dir)

    def owners(self) -> list[Owner]:
        added = {path.name.removesuffix(".auth"): _mtime(path)
                 for path in self._auth_files()}
        with_keys = {owned[0] for line in self._key_lines() if (owned := _line_owner(line))}
        return [Owner(name, added.get(name), name in with_keys)
                for name in sorted(added.keys() | with_keys)]

    def add(self, name: str, ssh_key: str | None, command: str,
            then: Callable[[OwnerKey], None] = lambda key: None) -> OwnerKey:
        """A new key pair for `name` (its public half in authorized_clients/) and, when
        given, its ssh key forced to `command`. Tor applies it after a reload: `then`, run
        before the next change may start."""
        with self._one_change_at_a_time():
            self._refuse_clashes(name, ssh_key)
            self.ensure_lock()
            if ssh_key is not None:
                lines = [*self._key_lines(), ssh_key_line(command, ssh_key, name)]
                self._write_keys(lines)
            key = OwnerKey.generate()
            maildir.write_private(self.clients / f"{name}.auth",
                                  key.service_line().encode() + b"\n", like=self.onion_dir)
            then(key)
            return key

    def remove(self, name: str, then: Callable[[], None] = lambda: None) -> None:
        """Both the auth file and the ssh key of `name` (tor forgets it after a reload:
        `then`, run before the next change may start)."""
        with self._one_change_at_a_time():
            self.ensure_lock()
            lines = self._key_lines()
            kept = [line for line in lines if (_line_owner(line) or ("",))[0] != name]
            if len(kept) != len(lines):
                self._write_keys(kept)
            removed_auth = maildir.remove_durably(self.clients / f"{name}.auth")
            if not removed_auth and len(kept) == len(lines):
                raise CommandError(EX_NOUSER, f"no owner {name!r} (onionpost owner list shows"
                                   " them)")
            then()

    def renew_lock_entry(self) -> None:
        """A new key in the lock entry: a change that makes tor rebuild the descriptor.
        Only from a `then` of add or remove (it takes no lock of its own)."""
        maildir.write_private(self.clients / LOCK_FILE,
                              OwnerKey.generate().service_line().encode() + b"\n",
                              like=self.onion_dir)

    @contextmanager
    def _one_change_at_a_time(self) -> Iterator[None]:
        """Two `owner add` at once would each rewrite the keys file from what it read."""
        try:
            fd = os.open(self.onion_dir, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            raise CommandError(EX_UNAVAILABLE, f"{self.onion_dir}: no such directory (tor makes"
                               " it when it first publishes the owner onion)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _refuse_clashes(self, name: str, ssh_key: str | None) -> None:
        for owner in self.owners():
            if owner.name == name:
                since = f" (added {owner.added:%Y-%m-%d %H:%M} UTC)" if owner.added else ""
                raise CommandError(EX_CANTCREAT, f"owner {name!r} exists{since}: remove it"
                                   f" first (onionpost owner remove {name})")
        for line in self._key_lines():
            owned = _line_owner(line)
            if ssh_key is not None and owned is not None and owned[1] == ssh_key:
                raise CommandError(EX_CANTCREAT, f"this ssh key is already installed for"
                                   f" owner {owned[0]!r}")

    def _auth_files(self) -> list[Path]:
        if not self.clients.is_dir():
            return []
        return [path for path in self.clients.glob("*.auth") if path.name != LOCK_FILE]

    def _key_lines(self) -> list[str]:
        try:
            return self.ssh_keys.read_text().splitlines()
        except FileNotFoundError:
            return []

    def _write_keys(self, lines: list[str]) -> None:
        # sshd (non-root, StrictModes) reads it: public keys, so 0644, owned like its dir.
        self.ssh_keys.parent.mkdir(parents=True, exist_ok=True)
        maildir.write_private(self.ssh_keys, "".join(f"{line}\n" for line in lines).encode(),
                              mode=0o644, like=self.ssh_keys.parent)


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)
