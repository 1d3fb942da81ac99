"""`onionpost send-queue`: deliver the outbox's due messages (run it from cron), `--list` it,
`--flush` it. Expired or refused messages become a bounce in the local inbox."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TextIO

from onionpost.exits import EX_IOERR, EX_OK, EX_TEMPFAIL, CommandError, parse_args
from onionpost.sender import bounce, delivery, sendmail
from onionpost.sender.delivery import Connector, Result
from onionpost.sender.outbox import BusyError, Entry, Outbox, after_attempt, due, expired, span
from onionpost.sender.routing import Plan, Route
from onionpost.sender.transport import tor_connector
from onionpost.settings import Settings

log = logging.getLogger("onionpost.sender")
PROG = "onionpost send-queue"
EXPIRED = "not delivered within the queue lifetime"


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=(
        "Deliver queued outgoing mail that is due (safe to run from cron every few minutes)."))
    parser.add_argument("--list", action="store_true", help="print the queue, send nothing")
    parser.add_argument("--flush", action="store_true", help="try every message now")
    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args
    box = Outbox(settings.outbox.expanduser())
    if args.list:
        print_queue(box.entries(), time.time(), sys.stdout)
        return 0
    connector = tor_connector(*settings.hostport(settings.tor_socks))
    return run(box, settings, connector, flush=args.flush)


def run(box: Outbox, settings: Settings, connector: Connector, *, flush: bool = False,
        clock: Callable[[], float] = time.time) -> int:
    try:
        with box.lock():
            box.remove_orphans(clock())
            for entry in box.entries():
                work_on(entry, box, settings, connector, flush, clock())
    except BusyError:
        raise CommandError(EX_TEMPFAIL, "another run is delivering the queue; try later") from None
    except OSError as error:
        raise CommandError(EX_IOERR, f"{error.filename or box.root}: {error.strerror}") from None
    return EX_OK


def work_on(entry: Entry, box: Outbox, settings: Settings, connector: Connector,
            flush: bool, now: float) -> None:
    if expired(entry, now, settings.queue_lifetime):
        failures = [bounce.Failure(recipient, entry.last_error.get(domain, "not delivered"))
                    for domain, recipients in entry.recipients.items()
                    for recipient in recipients]
        send_bounce(box.message(entry.id), entry.sender, failures, settings, EXPIRED)
        box.remove(entry.id)
        log.info("event=queue_expired id=%s recipients=%d", entry.id, len(failures))
        return
    if not due(entry, now, flush):
        return
    original = box.message(entry.id)
    results = attempt(entry, original, settings, connector)
    updated, refused = after_attempt(entry, results, now)
    if refused:
        send_bounce(original, entry.sender,
                    [bounce.Failure(r.recipient, r.detail) for r in refused], settings,
                    "the receiving server refused it")
    if updated is None:
        box.remove(entry.id)
    else:
        box.save(updated)
    sent = sum(result.status == "sent" for result in results)
    log.info("event=queue_attempt id=%s sent=%d refused=%d waiting=%d", entry.id, sent,
             len(refused), sum(map(len, updated.recipients.values())) if updated else 0)


def attempt(entry: Entry, message: bytes, settings: Settings,
            connector: Connector) -> list[Result]:
    """One try per domain (cron is the retry loop); every domain on its own."""
    plan = Plan(routes=[Route(domain, list(recipients))
                        for domain, recipients in entry.recipients.items()])
    configured = sendmail.delivery_options(settings, sendmail.own_domain(settings), entry.sender)
    options = replace(configured, retry_delays=())
    return delivery.deliver(plan, entry.sender, message, connector, options, partial=True)


def send_bounce(original: bytes, sender: str, failures: list[bounce.Failure],
                settings: Settings, why: str) -> None:
    raw = bounce.build(original, sender, failures, sendmail.own_domain(settings),
                       datetime.now(UTC), why)
    bounce.deliver_local(settings.local_inbox.expanduser(), raw)


def print_queue(entries: list[Entry], now: float, out: TextIO) -> None:
    if not entries:
        print("the outbox is empty", file=out)
        return
    for entry in entries:
        next_try = "due" if due(entry, now) else f"in {span(entry.next_attempt - now)}"
        print(f"{entry.id}  age {span(now - entry.first_queued)}  attempts {entry.attempts}"
              f"  next try {next_try}", file=out)
        for domain, recipients in entry.recipients.items():
            print(f"  {domain} ({len(recipients)} recipient{'s' * (len(recipients) != 1)}):"
                  f" {entry.last_error.get(domain, '')}", file=out)
