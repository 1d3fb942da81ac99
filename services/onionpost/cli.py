"""The `onionpost` command: one sub-command per service or tool, imported only when used."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

from onionpost import logs
from onionpost.exits import EX_CONFIG, EX_USAGE, CommandError, ConfigError

Command = Callable[[list[str], Any], int]

# name -> ("module:function", one line of help). function(argv, settings) -> exit code;
# each sub-command parses its own arguments (sendmail's flags are not argparse-shaped).
# settings: onionpost.settings.Settings, unless the command's module has its own
# load_settings(): sendmail (to start fast) and dashboard (to stay small) read theirs
# without pydantic, with onionpost.setting_values.
COMMANDS: dict[str, tuple[str, str]] = {
    "ingest": ("onionpost.ingest.command:main", "receive mail: the SMTP service"),
    "guardian": ("onionpost.guardian.command:main", "enforce the mailbox limits (rq worker)"),
    "notifier": ("onionpost.notifier.command:main", "post alerts to ntfy (rq worker)"),
    "pause": ("onionpost.guardian.command:pause", "stop accepting mail now"),
    "resume": ("onionpost.guardian.command:resume", "accept mail again"),
    "watch": ("onionpost.watch.command:main", "probe our onion from outside, alert, heal"),
    "status": ("onionpost.status:main", "tor, ingest, mailbox and queues at a glance"),
    "address": ("onionpost.tor.control:address_main", "print our onion address"),
    "secrets": ("onionpost.stack_secrets:main", "the stack's generated passwords"),
    "dashboard": ("onionpost.dashboard:main", "rq-dashboard behind a password (compose)"),
    "sendmail": ("onionpost.sender.sendmail:main", "send a message (sendmail-compatible)"),
    "send-queue": ("onionpost.sender.queue_command:main", "deliver queued outgoing mail (cron)"),
    "contacts": ("onionpost.sender.contacts:main", "the address book: add, list, remove"),
    "neomutt-config": ("onionpost.sender.neomutt:main", "print a neomutt configuration"),
    "pgp": ("onionpost.sender.pgp_init:main", "the owner's OpenPGP key on the laptop: init"),
    "fetch": ("onionpost.fetch.client:main", "move mail from the server to this machine"),
    "fetch-serve": ("onionpost.fetch.serve:main", "server side of fetch (forced command)"),
    "owner": ("onionpost.owner.command:main", "owner devices of the owner onion: add, list,"
              " remove, join"),
    "pgp-key": ("onionpost.pgp_key_command:main", "the owner's OpenPGP key (encryption at rest)"),
    "tor-connect": ("onionpost.tor.proxy_command:main", "ssh ProxyCommand through tor's SOCKS"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "usage: onionpost COMMAND [ARGS]\n\ncommands:\n" + "\n".join(lines)


def _resolve(name: str) -> tuple[Command, Callable[[], Any]]:
    """The command's function and its settings loader; importing only what it uses."""
    module_name, _, function = COMMANDS[name][0].partition(":")
    module = importlib.import_module(module_name)
    load = getattr(module, "load_settings", None)
    if load is None:
        load = importlib.import_module("onionpost.settings").load_settings
    return getattr(module, function), load


def run(name: str, argv: list[str], prog: str | None = None) -> int:
    """Load the settings, run command `name`; its errors become one stderr line that starts
    with `prog` (default `onionpost NAME`) and a sysexits code."""
    if name not in COMMANDS:
        print(f"onionpost: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return EX_USAGE
    _, load = _resolve(name)
    try:
        settings = load()
    except ConfigError as error:
        print(f"onionpost: configuration error: {error}", file=sys.stderr)
        return EX_CONFIG
    logs.configure(settings.log_level)
    return invoke(name, argv, settings, prog)


def invoke(name: str, argv: list[str], settings: Any, prog: str | None = None) -> int:
    """Run command `name` with these settings; a ConfigError or CommandError becomes its line
    on stderr and its exit code."""
    prog = prog or f"onionpost {name}"
    command, _ = _resolve(name)
    try:
        return command(argv, settings)
    except ConfigError as error:
        print(f"{prog}: configuration error: {error}", file=sys.stderr)
        return EX_CONFIG
    except CommandError as error:
        print(f"{prog}: {error.message}", file=sys.stderr)
        return error.code


def main() -> None:
    argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        sys.exit(0 if argv else EX_USAGE)
    sys.exit(run(argv[0], argv[1:]))


def sendmail_main() -> None:
    """The `onionpost-sendmail` console script, for `set sendmail=` in neomutt."""
    sys.exit(run("sendmail", sys.argv[1:], prog="onionpost-sendmail"))
