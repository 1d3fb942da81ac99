"""`onionpost neomutt-config`: a neomutt configuration for onionpost users. The seed's
Maildir folders and display settings stay; its per-contact send-hooks become aliases from
the address book, and every message leaves through `onionpost-sendmail --queue`: a send never
waits for retries, the outbox and `onionpost send-queue` (cron) do them. OpenPGP through
GPGME: every message signed with the owner's key, encrypted to contacts whose key we know."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from onionpost.exits import CommandError, ConfigError, parse_args
from onionpost.sender import contacts, keyring
from onionpost.sender.contacts import AddressBook

if TYPE_CHECKING:
    from onionpost.settings import Settings

DEFAULT_FOLDER = "~/mail/"
DEFAULT_USER = "anon"  # the seed's `set from = anon`, now at our onion
FOLDERS = ("inbox", "sent", "drafts", "trash")
SENDMAIL = "onionpost-sendmail -oi --queue"
# What send-queue reads: cron gets none of the shell's variables, so the line carries these.
QUEUE_SETTINGS = ("domain", "onion_hostname_file", "tor_socks", "send_starttls",
                  "send_timeout", "outbox", "queue_lifetime", "local_inbox")

_SEED_DISPLAY = """\
# --- reading (the seed's settings) ---
alternative_order text/plain text/html
auto_view text/html
set mark_old = no
set sort = threads
set sort_aux = reverse-last-date-received
set strict_threads = yes
set uncollapse_jump = yes
set sort_re
set indent_string = " "

# --- sidebar (the seed's settings) ---
set sidebar_visible = yes
set sidebar_width = 23
set sidebar_short_path = yes
set sidebar_format = "%B %* [%?N?%N / ?%S]"
set sidebar_next_new_wrap = yes
set mail_check_stats
bind index,pager \\Ck sidebar-prev
bind index,pager \\Cj sidebar-next
bind index,pager \\Co sidebar-open
bind index,pager \\Cp sidebar-prev-new
bind index,pager \\Cn sidebar-next-new
bind index,pager B sidebar-toggle-visible
"""


# Autocrypt stays off: neomutt keeps its Autocrypt keys in a GnuPG home of its own
# (autocrypt_dir), made by questions at first start, so it would sign and be answered with a
# second key, not the owner's key the server encrypts to; and its header puts a key in every
# message. Keys are exchanged once instead: `onionpost contacts add NAME ADDRESS --key FILE`.
_OPENPGP = """\
# --- OpenPGP (GPGME; gpg's keyring: GNUPGHOME, else ~/.gnupg) ---
set crypt_use_gpgme = yes
set autocrypt = no
set crypt_verify_sig = yes
# Encrypted to every recipient whose key is known (contacts add --key), else signed only.
set crypt_opportunistic_encrypt = yes
# Only keys bound by a crypt-hook (contacts add --key) or ones you certified: a contact's
# key file can carry user ids naming anyone, and they must not be taken for them.
set crypt_opportunistic_encrypt_strong_keys = yes
set crypt_reply_encrypt = yes
set crypt_reply_sign_encrypted = yes
set pgp_self_encrypt = yes
# Each crypt-hook line (contacts add --key) is a key you chose: no question per message.
set crypt_confirm_hook = no
# Mail stored encrypted shows "..." outside: the real Subject is read from inside, and
# written inside (outer "...") when we encrypt, never written back in clear.
set crypt_protected_headers_read = yes
set crypt_protected_headers_write = yes
set crypt_protected_headers_subject = "..."
unset crypt_protected_headers_save
# No header cache: it would keep the decrypted subjects on disk, in clear.
unset header_cache
"""


_REGEX_SPECIAL = frozenset(".[]()*+?{}|^$\\")


def _quote(value: str) -> str:
    """A neomutt string in double quotes (backslash, quote, backtick and $ escaped)."""
    escaped = "".join("\\" + char if char in '\\"`$' else char for char in value)
    return f'"{escaped}"'


def cron_line(command: str = "onionpost", env: dict[str, str] | None = None) -> str:
    """The crontab line that delivers the outbox every 5 minutes (`%` is a newline to cron)."""
    assignments = "".join(f"{name}={shlex.quote(value)} " for name, value in (env or {}).items())
    return f"*/5 * * * * {assignments}{command} send-queue".replace("%", "\\%")


def queue_environment(settings: Settings) -> dict[str, str]:
    """The send-queue settings given in this environment, as variables for the cron line."""
    return {f"ONIONPOST_{name.upper()}": str(getattr(settings, name))
            for name in QUEUE_SETTINGS if name in settings.model_fields_set}


def installed_command() -> str:
    """`onionpost` by its full path when we find it: cron's PATH is only /usr/bin:/bin."""
    found = shutil.which("onionpost", path=str(Path(sys.executable).parent))
    return found or shutil.which("onionpost") or "onionpost"


def signing(own_address: str, key: str | None) -> str:
    """Every message signed with the owner's key; without one, a line saying how to make it."""
    if key is None:
        return (f"# No OpenPGP key for {own_address} in your keyring yet: run `onionpost pgp"
                " init`,\n# then neomutt-config again, and every message will be signed.\n"
                "set crypt_auto_sign = no\n")
    return (f"set pgp_default_key = {_quote(key)}\nset pgp_sign_as = {_quote(key)}\n"
            "set crypt_auto_sign = yes\nset crypt_reply_sign = yes\n")


def crypt_hooks(book: AddressBook) -> str:
    """Each contact's address bound to the key given for it, whatever its user ids say. The
    pattern is a regex neomutt searches for: anchored, so that it is this address only."""
    return "".join(f"crypt-hook {_quote(_exactly(book.entries[name]))} {fingerprint}\n"
                   for name, fingerprint in book.keys.items())


def _exactly(address: str) -> str:
    """A POSIX extended regex matching `address` and nothing else."""
    return "^" + "".join("\\" + char if char in _REGEX_SPECIAL else char
                         for char in address) + "$"


def render(own_address: str, book: AddressBook, folder: str = DEFAULT_FOLDER,
           cron: str | None = None, key: str | None = None) -> str:
    domain = own_address.rpartition("@")[2]
    folder = folder if folder.endswith("/") else folder + "/"
    # Quoted: a local part may hold ` $ ; (RFC 5322 atext), which neomutt would run/expand.
    aliases = "".join(f"alias {name} {_quote(address)}\n"
                      for name, address in book.entries.items())
    mkdir = " ".join(f"{folder}{name}/{{cur,new,tmp}}" for name in FOLDERS)
    return f"""\
# neomutt configuration from `onionpost neomutt-config`: source it from your neomuttrc
# or run `neomutt -F <this file>`. Folders first: mkdir -p {mkdir}

# --- mailboxes (Maildir, as in the seed) ---
set mbox_type = Maildir
set folder = {_quote(folder)}
set spoolfile = +inbox
set record = +sent
set postponed = +drafts
set trash = +trash
set mail_check = 5
mailboxes +inbox +sent +drafts +trash

# --- sending: any user@<onion> recipient goes straight to that onion over Tor ---
# --queue: one try, then an onion that is down (or tor not running) waits in the outbox and
# a send never hangs. `onionpost send-queue` delivers the outbox; in your crontab:
#   {cron or cron_line()}
set sendmail = {_quote(SENDMAIL)}
set sendmail_wait = 0
set use_envelope_from = no
set from = {_quote(own_address)}
# Without a name here neomutt puts the login's full name from /etc/passwd into From.
set realname = {_quote(own_address.rpartition("@")[0])}
set hostname = {_quote(domain)}
set user_agent = no

# --- contacts (`onionpost contacts add NAME ADDRESS`), instead of one hook per contact ---
{aliases}
{_OPENPGP}{signing(own_address, key)}{crypt_hooks(book)}
{_SEED_DISPLAY}"""


def _own_domain(settings: Settings) -> str:
    domain = settings.onion_domain()
    if not domain:
        raise ConfigError(f"{settings.onion_hostname_file} is empty: set ONIONPOST_DOMAIN"
                          " or give --from")
    return domain


def own_address(settings: Settings, given: str | None = None) -> str:
    """`given`, else ONIONPOST_FROM, else anon; a bare name gets our onion."""
    sender = given or settings.from_address or DEFAULT_USER
    return sender if "@" in sender else f"{sender}@{_own_domain(settings)}"


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(
        prog="onionpost neomutt-config",
        description="Print a neomutt configuration that sends through onionpost-sendmail.")
    parser.add_argument("--folder", default=DEFAULT_FOLDER,
                        help=f"the Maildir folder root (default {DEFAULT_FOLDER})")
    parser.add_argument("--from", dest="sender",
                        help=f"our address (default ONIONPOST_FROM, else {DEFAULT_USER}@<our"
                        " onion>)")
    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args
    sender = own_address(settings, args.sender)
    cron = cron_line(installed_command(), queue_environment(settings))
    key = _owner_fingerprint(sender)
    sys.stdout.write(render(sender, contacts.load(settings.address_book), args.folder, cron,
                            key))
    print(f"neomutt-config: queued mail leaves with `onionpost send-queue`: add this line"
          f" to your crontab (crontab -e):\n{cron}", file=sys.stderr)
    return 0


def _owner_fingerprint(address: str) -> str | None:
    try:
        key = keyring.owner_key(address)
    except CommandError as error:  # no gpg: the config still reads and sends mail
        print(f"neomutt-config: {error.message}: messages will not be signed", file=sys.stderr)
        return None
    if key is None:
        print(f"neomutt-config: no OpenPGP key for {address}: run `onionpost pgp init` to sign"
              " every message", file=sys.stderr)
        return None
    return key.fingerprint
