"""`onionpost owner join` on the laptop: the owner onion's client key where the laptop's tor
reads it, a fetch ssh key, and an ssh Host block so `onionpost fetch owner` just works."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import stem

from onionpost import maildir
from onionpost.exits import EX_CANTCREAT, EX_NOINPUT, EX_OK, EX_USAGE, CommandError
from onionpost.owner.invitation import Invitation, parse
from onionpost.settings import Settings
from onionpost.tor import control

FALLBACK_AUTH_DIR = Path("~/.config/onionpost/onion_auth")
# An ssh Host name and part of a file name: nothing ssh_config or a path would read as more.
_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_TORRC_AUTH_DIR = re.compile(r"^\s*ClientOnionAuthDir\s+(\S+)", re.MULTILINE | re.IGNORECASE)


def run(args: argparse.Namespace, settings: Settings) -> int:
    ssh_config = args.ssh_config.expanduser()
    identity = (args.identity or ssh_config.parent / "onionpost_fetch").expanduser()
    if args.print_ssh_key:  # stdout: the key line alone, to paste into `owner add`
        if ensure_ssh_key(identity):
            print(f"made the fetch key {identity}", file=sys.stderr)
        print(identity.with_name(identity.name + ".pub").read_text().strip())
        return EX_OK
    if not _ALIAS.fullmatch(args.alias):
        raise CommandError(EX_USAGE, f"--alias must be 1-64 of letters, digits, . _ -,"
                           f" starting with a letter or digit (got {args.alias!r})")
    invitation = parse(_read_input(args.file), settings.owner_ssh_user)
    _install_auth(invitation, args, settings)
    created = ensure_ssh_key(identity)
    if created:
        print(f"made the fetch key {identity}")
    write_host_block(ssh_config, args.alias, host_block(args.alias, invitation, identity,
                                                        ssh_config.parent))
    print(f"ssh: Host {args.alias} in {ssh_config} ({invitation.ssh_user}@"
          f"{invitation.address} through tor)")
    public = identity.with_name(identity.name + ".pub").read_text().strip()
    if created or invitation.ssh_key is None or invitation.ssh_key.split()[:2] != \
            public.split()[:2]:
        print(f"the server does not know this fetch key yet: on the server run\n"
              f"  onionpost owner remove {invitation.name} && onionpost owner add"
              f" {invitation.name} --ssh-key '{public}'\nthen `owner join` what it prints.")
    else:
        print(f"ready: onionpost fetch {args.alias}")
    return EX_OK


def _read_input(file: Path | None) -> str:
    try:
        return file.read_text() if file is not None else sys.stdin.read()
    except OSError as error:
        raise CommandError(EX_NOINPUT, f"{file}: {error.strerror}") from None



def write_file(path: Path, text: str, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    maildir.write_private(path, text.encode(), mode)


# --- the client authorization key -----------------------------------------------------
def _install_auth(invitation: Invitation, args: argparse.Namespace,
                  settings: Settings) -> None:
    file_name = f"onionpost-{args.alias}.auth_private"
    tor_dir = args.auth_dir or tor_auth_dir(settings, args.torrc)
    target = (tor_dir or FALLBACK_AUTH_DIR).expanduser() / file_name
    line = invitation.auth_private + "\n"
    in_tor_dir = tor_dir is not None
    try:
        write_file(target, line)
        print(f"wrote {target}")
    except OSError as error:  # typically tor's own directory, not writable by us
        fallback = FALLBACK_AUTH_DIR.expanduser() / file_name
        write_file(fallback, line)
        print(f"wrote {fallback}: cannot write {target} ({error.strerror}); put it there and"
              f" reload tor:\n  sudo install -m 600 -o $(stat -c %U"
              f" {shlex.quote(str(target.parent))}) {shlex.quote(str(fallback))}"
              f" {shlex.quote(str(target))}")
        in_tor_dir = False
    if tor_dir is None:
        print(f"your tor has no ClientOnionAuthDir: add this line to its torrc, then reload"
              f" it:\n  ClientOnionAuthDir {target.parent}")
    if not _tell_tor(invitation, settings, from_file=in_tor_dir):
        print("tor's ControlPort did not answer: reload your tor (e.g. sudo systemctl reload"
              " tor) so it reads the key")


def tor_auth_dir(settings: Settings, torrc: Path) -> Path | None:
    """ClientOnionAuthDir of the laptop's tor: asked over its ControlPort, else its torrc."""
    try:
        with control.connect(settings) as controller:
            value = controller.get_conf("ClientOnionAuthDir", None)
            return Path(value) if value else None
    except (control.TorControlError, stem.ControllerError, stem.SocketError):
        pass
    try:
        match = _TORRC_AUTH_DIR.search(torrc.read_text())
    except OSError:
        return None
    return Path(match.group(1)) if match else None


def _tell_tor(invitation: Invitation, settings: Settings, from_file: bool) -> bool:
    """Make the running tor use the key now, no restart: a reload when the file is in its
    ClientOnionAuthDir, else ONION_CLIENT_AUTH_ADD (kept until tor restarts or is sent
    NEWNYM, which drops keys added this way)."""
    service = invitation.address.removesuffix(".onion")
    try:
        with control.connect(settings) as controller:
            if from_file:
                applied = control.reload(controller)
            else:
                reply = controller.msg(
                    f"ONION_CLIENT_AUTH_ADD {service} x25519:{invitation.private_key_b64}")
                applied = reply.content()[0][0] in ("250", "251", "252")
    except (control.TorControlError, stem.ControllerError, stem.SocketError):
        return False
    if applied:
        print("tor: the key is in use now")
    return applied


# --- ssh -------------------------------------------------------------------------------
def ensure_ssh_key(identity: Path) -> bool:
    """An ed25519 key without passphrase (cron uses it; it can only fetch). True: created."""
    if identity.exists():
        return False
    identity.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    result = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                             "onionpost-fetch", "-f", str(identity)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CommandError(EX_CANTCREAT, f"ssh-keygen: {result.stderr.strip()}")
    return True


def host_block(alias: str, invitation: Invitation, identity: Path, ssh_dir: Path) -> str:
    # accept-new: the onion address authenticates the service (and only authorized
    # clients find it), so the first host key seen is the owner sshd's.
    tor_connect = f"{_ssh_tokens(shlex.quote(sys.executable))} -m onionpost tor-connect %h %p"
    return "\n".join([
        f"Host {alias}",
        f"  HostName {invitation.address}",
        f"  User {invitation.ssh_user}",
        f"  ProxyCommand {tor_connect}",
        f"  IdentityFile {_ssh_path(identity)}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {_ssh_path(ssh_dir / 'onionpost_known_hosts')}",
        "  StrictHostKeyChecking accept-new",
        "",
    ])


def _ssh_tokens(text: str) -> str:
    """`text` with ssh's % tokens escaped."""
    return text.replace("%", "%%")


def _ssh_path(path: Path) -> str:
    """A path as one ssh_config argument ("/home/Jane Doe" is one): quoted, % escaped."""
    text = str(path)
    if '"' in text or any(ord(char) < 0x20 for char in text):
        raise CommandError(EX_USAGE, f"{text!r}: ssh_config cannot hold this path")
    return f'"{_ssh_tokens(text)}"'


def _markers(alias: str) -> tuple[str, str]:
    return (f"# >>> onionpost owner join: Host {alias} (rewritten on each join)",
            f"# <<< onionpost owner join: Host {alias}")


def merge_host_block(config: str, alias: str, block: str) -> str:
    """`config` with our block for `alias` replaced, or put first (ssh: first value wins)."""
    begin, end = _markers(alias)
    ours = f"{begin}\n{block}{end}\n"
    start = config.find(begin)
    if start >= 0:
        stop = config.find(end, start)
        if stop < 0:
            raise CommandError(EX_CANTCREAT, f"the ssh config has '{begin}' but not its end"
                               " marker: fix it by hand")
        return config[:start] + ours + config[stop + len(end):].removeprefix("\n")
    if re.search(rf"^\s*Host\s+(.*\s)?{re.escape(alias)}(\s|$)", config, re.MULTILINE):
        raise CommandError(EX_CANTCREAT, f"the ssh config already has a Host {alias} of its"
                           " own: use --alias NAME for ours")
    return ours + ("\n" + config if config else "")


def write_host_block(ssh_config: Path, alias: str, block: str) -> None:
    try:
        current = ssh_config.read_text()
    except FileNotFoundError:
        current = ""
    ssh_config.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = ssh_config.stat().st_mode & 0o777 if ssh_config.exists() else 0o600
    write_file(ssh_config, merge_host_block(current, alias, block), mode=mode)
