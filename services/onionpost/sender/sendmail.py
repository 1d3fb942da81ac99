"""`onionpost sendmail` / `onionpost-sendmail`: a sendmail(8) that delivers every
`user@<onion>` recipient straight to that onion's port 25 over Tor. It tries a few times,
then says 75 ("try later") and the mail client keeps the message; with the outbox on
(--queue, ONIONPOST_SEND_QUEUE=on) it tries once and queues it for `onionpost send-queue`."""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from onionpost import onion
from onionpost.exits import EX_DATAERR, EX_OK, EX_USAGE, CommandError, ConfigError
from onionpost.sender import (
    config,
    contacts,
    delivery,
    hygiene,
    invocation,
    message,
    outbox,
    routing,
)
from onionpost.sender.bounce import NO_DOMAIN
from onionpost.sender.config import SendSettings
from onionpost.sender.delivery import Connector, Options, Result
from onionpost.sender.neomutt import DEFAULT_USER
from onionpost.sender.transport import tor_connector

if TYPE_CHECKING:
    from onionpost.settings import Settings

PROG = "onionpost-sendmail"
NO_LOCAL_NAME = "[127.0.0.1]"  # EHLO when we know no onion of ours: says nothing about us
USAGE = f"""usage: {PROG} [-t] [-i | -oi] [-f SENDER] [-F NAME] [-v] [--partial]
                          [--keep-headers] [--queue] [--] [RECIPIENT ...]

Reads a message on stdin and delivers it over Tor to each recipient's onion (port 25).
  -t              also send to the To, Cc and Bcc addresses of the message
  -i, -oi         a line with a lone "." does not end the message
  -f SENDER       envelope sender (default: the From address, else ONIONPOST_FROM)
  -F NAME         full name for the From header, when the message has none
  -v              print one line per delivered recipient too
  --partial       send to the valid recipients even if others are refused
  --keep-headers  keep User-Agent and X-Mailer (removed by default)
  --queue         a destination down at the first try: queue the message in the
                  outbox (`onionpost send-queue` retries it) and exit 0 (as
                  ONIONPOST_SEND_QUEUE=on)
Recipients may be names from the address book (`onionpost contacts`).
Exit codes: 0 sent, 64 usage, 65 bad message, 67 unknown or non-onion recipient,
69 refused by the server (or its onion wants a key we lack), 75 try again
later, 78 configuration."""


def load_settings() -> SendSettings:
    """cli.run's settings for this command: sendmail's own reader, without pydantic."""
    return config.load()


def main(argv: list[str], settings: SendSettings) -> int:
    try:
        call = invocation.parse(argv)
    except invocation.UsageError as error:
        raise CommandError(EX_USAGE, f"{error}\n{USAGE}") from None
    if call.help:
        print(USAGE)
        return EX_OK
    book = contacts.load(settings.address_book)
    raw = message.read(sys.stdin.buffer, call.dots_end_message)
    connector = tor_connector(*settings.hostport(settings.tor_socks))
    return send(call, raw, settings, book.lookup, connector)


def send(call: invocation.Invocation, raw: bytes, settings: SendSettings | Settings,
         lookup: Callable[[str], str | None], connector: Connector, *,
         err: TextIO | None = None, out: TextIO | None = None,
         sleep: Callable[[float], None] = time.sleep) -> int:
    """Clean the message, route it and deliver it; report per recipient; the exit code."""
    err, out = err or sys.stderr, out or sys.stdout
    draft = message.Draft.parse(raw)
    recipients = routing.split(call.recipients)
    if call.from_headers:
        recipients += [address for _, address in draft.addresses("to", "cc", "bcc") if address]
    if not recipients:
        raise CommandError(EX_USAGE, "no recipients (give them as arguments, or -t with To/Cc/Bcc)")
    own = own_domain(settings)
    sender = envelope_sender(call.sender, draft, own, identity(settings, own))
    if not sender:
        raise CommandError(EX_DATAERR, "no sender: the message has no From header, no -f was"
                           " given and neither ONIONPOST_FROM nor our onion (ONIONPOST_DOMAIN)"
                           " is set")
    domain = own or outbox.domain_of(sender) or NO_DOMAIN
    stamp = hygiene.Stamp(datetime.now(UTC), hygiene.message_id(secrets.token_hex(16), domain))
    hygiene.clean(draft, stamp, sender=sender, full_name=call.full_name,
                  keep_headers=call.keep_headers, expand=lookup)
    use_queue = call.queue or settings.send_queue == "on"
    options = delivery_options(settings, own, sender, sleep)
    if use_queue:  # one try here; the retries are send-queue's, never the mail client's wait
        options = replace(options, retry_delays=())
    body = draft.to_bytes()
    results = delivery.deliver(routing.plan(recipients, lookup), sender, body,
                               connector, options, call.partial, use_queue)
    if use_queue and outbox.queueable(results):
        results = enqueue(results, sender, body, settings, err)
    report(results, len(options.retry_delays) + 1, call.verbose, err, out)
    return delivery.exit_code(results)


def enqueue(results: list[Result], sender: str, body: bytes, settings: SendSettings | Settings,
            err: TextIO) -> list[Result]:
    """Put the temporary failures in the outbox, one line per domain; the results left to
    report. If the outbox cannot be written, all results stand (exit 75 as without it)."""
    entry = outbox.new_entry(sender, results, time.time())
    try:
        outbox.Outbox(settings.outbox.expanduser()).add(entry, body)
    except OSError as error:
        print(f"{PROG}: cannot queue in {settings.outbox}: {error.strerror}", file=err)
        return results
    wait = outbox.span(entry.next_attempt - entry.first_queued)
    for domain, reason in entry.last_error.items():
        print(f"{PROG}: queued for {domain}: {reason}; next try in {wait}", file=err)
    return [result for result in results if result.status != "temporary"]


def own_domain(settings: SendSettings | Settings) -> str | None:
    """Our onion (ONIONPOST_DOMAIN or tor's hostname file), if this machine knows it."""
    try:
        return settings.onion_domain() or None
    except ConfigError:
        return None


def identity(settings: SendSettings | Settings, own: str | None) -> str | None:
    """This machine's sender address: ONIONPOST_FROM, else anon@<our onion> (what
    `onionpost neomutt-config` writes); None when we know neither."""
    if settings.from_address:
        return settings.from_address
    return f"{DEFAULT_USER}@{own}" if own else None


def envelope_sender(given: str | None, draft: message.Draft, own: str | None,
                    fallback: str | None = None) -> str | None:
    """-f, else the From address, else `fallback` (ONIONPOST_FROM: `mail -s` and cron write
    no From); a bare name ("anon", as in the seed's neomutt config) is qualified with our
    onion when we know it."""
    froms = [address for _, address in draft.addresses("from") if address]
    sender = given or (froms[0] if froms else None) or fallback
    if sender and "@" not in sender and own:
        return f"{sender}@{own}"
    return sender


def ehlo_name(own: str | None, sender: str) -> str:
    """Our onion, else the sender's onion, else an address literal: never the hostname."""
    if own:
        return own
    domain = outbox.domain_of(sender)
    return domain if onion.is_valid(domain) else NO_LOCAL_NAME


def delivery_options(settings: SendSettings | Settings, own: str | None, sender: str,
                     sleep: Callable[[float], None] = time.sleep) -> Options:
    return Options(ehlo_name=ehlo_name(own, sender), tls=settings.send_starttls == "on",
                   timeout=settings.send_timeout, retry_delays=settings.send_retry_delays,
                   sleep=sleep)


def report(results: list[Result], tries: int, verbose: bool, err: TextIO, out: TextIO) -> None:
    """One line per recipient not delivered; tor not running here is said once for all."""
    local = [result for result in results if result.local]
    if local:
        count = f"{len(local)} recipient{'s' * (len(local) != 1)}"
        print(f"{PROG}: {local[0].detail} (ONIONPOST_TOR_SOCKS): not sent to {count};"
              " start tor and send again", file=err)
    for result in results:
        if result.local:
            continue
        if result.status == "sent":
            if verbose:
                print(f"{result.recipient}: sent ({result.detail})", file=out)
        elif result.status == "temporary":
            print(f"{PROG}: {result.recipient}: {result.detail} (gave up after {tries}"
                  f" {'try' if tries == 1 else 'tries'}; try again later)", file=err)
        else:
            print(f"{PROG}: {result.recipient}: {result.detail}", file=err)
