"""`onionpost owner add|list|remove` on the server, `owner join` on the laptop."""

from __future__ import annotations

import argparse
from pathlib import Path

import stem

from onionpost.exits import EX_CANTCREAT, EX_OK, EX_TEMPFAIL, CommandError, parse_args
from onionpost.owner.invitation import Invitation
from onionpost.owner.registry import OwnerAccess, check_name, parse_ssh_key
from onionpost.settings import Settings
from onionpost.tor import control
from onionpost.tor.client_auth import OwnerKey


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onionpost owner",
        description="Who may reach the owner onion (fetch over ssh, ntfy, dashboard): each"
                    " owner device gets a Tor client-authorization key.")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="a new owner device: prints its keys once")
    add.add_argument("name", help="a name for the device, e.g. laptop (a-z, 0-9, -)")
    add.add_argument("--ssh-key", metavar="PUBLIC_KEY",
                     help="its fetch key ('ssh-ed25519 AAAA...'), forced to fetch-serve")
    add.set_defaults(run=_add)
    listing = commands.add_parser("list", help="owner devices and when they were added")
    listing.set_defaults(run=_list)
    remove = commands.add_parser("remove", help="revoke a device's onion key and ssh key")
    remove.add_argument("name")
    remove.set_defaults(run=_remove)
    join = commands.add_parser("join", help="laptop: use what `owner add` printed")
    join.add_argument("file", nargs="?", type=Path,
                      help="what `owner add` printed (default: standard input)")
    join.add_argument("--auth-dir", type=Path,
                      help="the laptop tor's ClientOnionAuthDir (default: ask tor)")
    join.add_argument("--torrc", type=Path, default=Path("/etc/tor/torrc"),
                      help="where to look for ClientOnionAuthDir when tor cannot be asked")
    join.add_argument("--ssh-config", type=Path, default=Path("~/.ssh/config"),
                      help="ssh config that gets the Host block (default: ~/.ssh/config)")
    join.add_argument("--identity", type=Path,
                      help="the fetch key (default: onionpost_fetch beside the ssh config)")
    join.add_argument("--alias", default="owner", help="the ssh Host name (default: owner)")
    join.add_argument("--print-ssh-key", action="store_true",
                      help="only make the fetch key if missing and print its public half"
                           " (for `owner add NAME --ssh-key`)")
    join.set_defaults(run=_join)
    return parser


def main(argv: list[str], settings: Settings) -> int:
    args = parse_args(_parser(), argv)
    if isinstance(args, int):
        return args
    try:
        return int(args.run(args, settings))
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        raise CommandError(EX_CANTCREAT, f"{where}{error.strerror or error} (run as the user"
                           " that owns these files: tor's, in the stack)") from None


def _access(settings: Settings) -> OwnerAccess:
    return OwnerAccess(settings.owner_onion_dir, settings.owner_ssh_keys)


def _add(args: argparse.Namespace, settings: Settings) -> int:
    name = check_name(args.name)
    ssh_key = parse_ssh_key(args.ssh_key) if args.ssh_key is not None else None
    access = _access(settings)
    address = access.address()

    def announce_and_publish(key: OwnerKey) -> None:
        print(Invitation(name, address, key.client_line(address), settings.owner_ssh_user,
                         ssh_key, settings.ntfy_topic).render(), flush=True)
        publish(settings, access, f"owner {name!r} is written but not active yet")

    access.add(name, ssh_key, settings.owner_serve_command, then=announce_and_publish)
    return EX_OK


def _list(args: argparse.Namespace, settings: Settings) -> int:
    access = _access(settings)
    access.ensure_lock()
    owners = access.owners()
    if not owners:
        print("no owners yet (onionpost owner add NAME)")
    for owner in owners:
        added = f"{owner.added:%Y-%m-%d %H:%M} UTC" if owner.added else "(ssh key only)"
        print(f"{owner.name:<32}  {added:<20}  {'ssh' if owner.has_ssh_key else '-'}")
    return EX_OK


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    name = check_name(args.name)
    access = _access(settings)

    def announce_and_publish() -> None:
        print(f"removed owner {name!r}: onion key and ssh key", flush=True)
        publish(settings, access, f"owner {name!r} is removed from the files, but tor still"
                                  " accepts the key")

    access.remove(name, then=announce_and_publish)
    return EX_OK


def _join(args: argparse.Namespace, settings: Settings) -> int:
    from onionpost.owner import join  # laptop only: keeps the server commands light

    return join.run(args, settings)


def publish(settings: Settings, access: OwnerAccess, pending: str) -> None:
    """tor re-reads authorized_clients/ (SIGNAL RELOAD, no restart) and publishes the owner
    onion's new descriptor; said in one line, or a CommandError when it cannot."""
    try:
        with control.connect(settings) as controller:
            publication = control.reload_and_publish(controller, access.address(),
                                                     access.renew_lock_entry)
    except (control.TorControlError, stem.ControllerError, stem.SocketError) as error:
        raise CommandError(EX_TEMPFAIL, f"{pending}: tor did not reload ({error});"
                           " reload or restart tor to apply") from None
    if publication is None:
        raise CommandError(EX_TEMPFAIL, f"{pending}: tor did not confirm its reload;"
                           " reload or restart tor to apply")
    uploads = publication.uploads
    if publication.published:
        print(f"tor reloaded: in effect now, published to {uploads.uploaded} onion"
              " directories")
    elif not publication.online:
        print("tor reloaded: in effect once tor is connected to the Tor network (it"
              " publishes the owner onion then)")
    elif not uploads.settled:
        print(f"tor reloaded: tor publishes the change as soon as the owner onion is up"
              f" (nothing published within {control.UPLOAD_WAIT_SECONDS:.0f} s)")
    else:
        raise CommandError(EX_TEMPFAIL, f"{pending}: tor reloaded, but the onion directories"
                           f" did not take the new descriptor ({uploads.uploaded} took it,"
                           f" {uploads.rejected} refused it, {uploads.failed} failed);"
                           " restart tor to publish it")
