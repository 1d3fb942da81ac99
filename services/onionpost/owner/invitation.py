"""What `owner add` prints once for the owner's devices, and `owner join` reads back (pure)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from onionpost.exits import EX_DATAERR, CommandError
from onionpost.tor.client_auth import service_id

DASHBOARD_PORT = 9181
_AUTH_LINE = re.compile(r"^[\s>]*([a-z2-7]{56}):descriptor:x25519:([A-Z2-7]{52})\s*$", re.MULTILINE)
_SSH_LINE = re.compile(r"^ssh:\s+([a-z_][a-z0-9_-]*)@([a-z2-7]{56}\.onion)\b", re.MULTILINE)
_NAME_LINE = re.compile(r'^onionpost owner "([a-z0-9-]+)"', re.MULTILINE)
_NTFY_LINE = re.compile(r"^ntfy:\s+http://[a-z2-7]{56}\.onion/(\S+)$", re.MULTILINE)
_FETCH_KEY = re.compile(r"\(fetch key: ([^)\n]+)\)")


@dataclass(frozen=True)
class Invitation:
    name: str
    address: str        # <56 chars>.onion
    auth_private: str   # <ClientOnionAuthDir>/NAME.auth_private: <id>:descriptor:x25519:<key>
    ssh_user: str
    ssh_key: str | None  # the public key installed for fetch, or None
    ntfy_topic: str = "onionpost"

    @property
    def private_key_b64(self) -> str:
        """The x25519 private key as tor's ONION_CLIENT_AUTH_ADD takes it."""
        key = self.auth_private.rsplit(":", 1)[1]
        return base64.b64encode(base64.b32decode(key + "====")).decode()

    def render(self) -> str:
        ssh = (f"{self.ssh_user}@{self.address}  (fetch key: {self.ssh_key})" if self.ssh_key
               else f"{self.ssh_user}@{self.address}  (no ssh key installed: fetch is off)")
        return "\n".join([
            f'onionpost owner "{self.name}": what the owner\'s devices need.'
            " Shown once: keep it secret.",
            "",
            f"owner onion:  {self.address}",
            f"ssh:          {ssh}",
            f"ntfy:         http://{self.address}/{self.ntfy_topic}",
            f"dashboard:    http://{self.address}:{DASHBOARD_PORT}/",
            "",
            "# client authorization (secret): the laptop's <ClientOnionAuthDir>/"
            f"{self.name}.auth_private, or Orbot's client-auth key",
            self.auth_private,
            "",
            "Laptop: save this text to a file and run `onionpost owner join FILE`.",
            "Phone: add the line above to Orbot (onion services, client auth), then subscribe"
            " to the ntfy URL in the ntfy app (Tor through Orbot).",
            "",
        ])


def parse(text: str, default_user: str) -> Invitation:
    """An Invitation from what `owner add` printed (labels and extra text ignored)."""
    found = {f"{match.group(1)}:descriptor:x25519:{match.group(2)}"
             for match in _AUTH_LINE.finditer(text)}
    if len(found) != 1:
        raise CommandError(EX_DATAERR, "expected exactly one line"
                           " '<56 chars>:descriptor:x25519:<key>' (what `owner add` printed),"
                           f" found {len(found)}")
    line = found.pop()
    sid, key = line.split(":")[0], line.rsplit(":", 1)[1]
    try:
        service_id(sid)
        raw = base64.b32decode(key + "====")
    except (ValueError, binascii.Error) as error:
        raise CommandError(EX_DATAERR, f"the client authorization line is damaged: {error}"
                           ) from None
    if len(raw) != 32:
        raise CommandError(EX_DATAERR, "the client authorization key is not 32 bytes")
    address = f"{sid}.onion"
    ssh, fetch_key = _SSH_LINE.search(text), _FETCH_KEY.search(text)
    if ssh and ssh.group(2) != address:
        raise CommandError(EX_DATAERR, f"the ssh line names {ssh.group(2)}, the key is for"
                           f" {address}: copy one `owner add` output whole")
    name, ntfy = _NAME_LINE.search(text), _NTFY_LINE.search(text)
    return Invitation(name.group(1) if name else "owner", address, line,
                      ssh.group(1) if ssh else default_user,
                      fetch_key.group(1).strip() if fetch_key else None,
                      ntfy.group(1) if ntfy else "onionpost")
