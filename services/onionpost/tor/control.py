"""Our tor, seen through its ControlPort (stem): bootstrap, onion address, descriptor, PoW,
reload."""

from __future__ import annotations

import argparse
import logging
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import stem
import stem.connection
from stem import Signal
from stem.control import Controller, EventType
from stem.descriptor.hidden_service import HiddenServiceDescriptorV3
from stem.response.events import HSDescEvent, SignalEvent

from onionpost import onion
from onionpost.exits import EX_OK, EX_UNAVAILABLE, CommandError, ConfigError
from onionpost.setting_values import split_hostport

if TYPE_CHECKING:
    from onionpost.settings import Settings

# stem logs every control message at DEBUG and its closed reader thread at INFO, repeatedly.
logging.getLogger("stem").setLevel(logging.WARNING)

FETCH_QUIET_SECONDS = 1.0
UPLOAD_WAIT_SECONDS = 60.0
PUBLISH_ATTEMPTS = 3
_BOOTSTRAP = re.compile(r'PROGRESS=(\d+).*?SUMMARY="([^"]*)"')
_POW_PARAMS = re.compile(r"^pow-params (\S+) (\S+) (\d+) (\S+)$", re.MULTILINE)


class TorControlError(Exception):
    """tor's ControlPort cannot be reached or refused us: said in one line."""


@dataclass(frozen=True)
class Bootstrap:
    progress: int
    summary: str


@dataclass(frozen=True)
class PowState:
    """What our descriptor tells clients about proof of work (`pow-params`)."""

    enabled: bool
    scheme: str = ""
    suggested_effort: int = 0
    expires: str = ""


@dataclass
class FetchOutcome:
    """Answers to one HSFETCH of our own descriptor: published once an HSDir returns it,
    not published once every HSDir asked said no."""

    address: str
    requested: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    received_from: str | None = None

    def feed(self, action: str, address: str, hsdir: str) -> None:
        if address != self.address:
            return
        if action == "REQUESTED":
            self.requested.add(hsdir)
        elif action == "RECEIVED" and self.received_from is None:
            self.received_from = hsdir
        elif action == "FAILED" and hsdir in self.requested:
            self.failed.add(hsdir)

    @property
    def published(self) -> bool | None:
        if self.received_from is not None:
            return True
        if self.requested and self.failed >= self.requested:
            return False
        return None


@dataclass
class Uploads:
    """tor's uploads of one onion service's descriptors after a reload: an UPLOAD per
    HSDir, then UPLOADED or FAILED (REASON=UPLOAD_REJECTED when the HSDir keeps what it
    has)."""

    address: str
    pending: Counter[str] = field(default_factory=Counter)
    uploaded: int = 0
    rejected: int = 0
    failed: int = 0

    def feed(self, action: str, address: str, hsdir: str, reason: str | None) -> None:
        if address != self.address:
            return
        if action == "UPLOAD":
            self.pending[hsdir] += 1
        elif action in ("UPLOADED", "FAILED") and self.pending[hsdir] > 0:
            self.pending[hsdir] -= 1  # a FAILED fetch by someone else has no UPLOAD
            self.uploaded += action == "UPLOADED"
            self.rejected += action == "FAILED" and reason == "UPLOAD_REJECTED"
            self.failed += action == "FAILED" and reason != "UPLOAD_REJECTED"

    @property
    def settled(self) -> bool:
        """Every HSDir tor uploaded to has answered."""
        started = self.uploaded + self.rejected + self.failed > 0
        return started and not any(count > 0 for count in self.pending.values())


@dataclass(frozen=True)
class Publication:
    """What became of a reload's new descriptors."""

    online: bool  # tor is bootstrapped: it can publish now
    uploads: Uploads

    @property
    def published(self) -> bool:
        return self.uploads.settled and self.uploads.uploaded > 0 and not self.uploads.rejected


def service_id(address: str) -> str:
    return address.lower().removesuffix(".onion")


def parse_bootstrap_phase(text: str) -> Bootstrap:
    """`GETINFO status/bootstrap-phase` -> progress and summary."""
    match = _BOOTSTRAP.search(text)
    if not match:
        return Bootstrap(0, "unknown")
    return Bootstrap(int(match.group(1)), match.group(2))


def parse_pow_params(inner_layer: str) -> PowState:
    """The decrypted descriptor's `pow-params <type> <seed> <effort> <expiry>` line."""
    match = _POW_PARAMS.search(inner_layer)
    if not match:
        return PowState(enabled=False)
    return PowState(True, match.group(1), int(match.group(3)), match.group(4))


# --- I/O: the ControlPort ------------------------------------------------------------
def connect(settings: Settings, control: str = "", cookie_file: Path | None = None
            ) -> Controller:
    """An authenticated controller of tor_control (or `control` with `cookie_file`): the
    cookie file from the settings, else the one tor names."""
    host, port = split_hostport(control or settings.tor_control)
    cookie_file = cookie_file if control else settings.tor_cookie_file
    try:
        # stem takes an IP address only; in compose the ControlPort is "tor:9051".
        controller = Controller.from_port(socket.gethostbyname(host), port)
    except (stem.SocketError, OSError) as error:
        raise TorControlError(f"cannot connect to tor's ControlPort {host}:{port}"
                             f" ({error})") from None
    try:
        protocolinfo = stem.connection.get_protocolinfo(controller)
        if cookie_file:  # tor's own path may be in another container's mount
            protocolinfo.cookie_path = str(cookie_file)
        controller.authenticate(protocolinfo_response=protocolinfo)
    except (stem.connection.AuthenticationFailure, stem.ControllerError, OSError) as error:
        controller.close()
        raise TorControlError(f"tor's ControlPort {host}:{port} refused authentication"
                             f" ({error})") from None
    return controller


def reload(controller: Controller, timeout: float = 10.0) -> bool:
    """SIGNAL RELOAD (tor re-reads its torrc and onion client keys, no restart); True once
    tor reports it. Waiting also avoids a stem deadlock: closing the controller while its
    event thread handles the SIGNAL RELOAD event hangs both for ever (stem 1.8)."""
    heard = threading.Event()

    def listen(event: SignalEvent) -> None:
        if event.signal == Signal.RELOAD:
            heard.set()

    controller.add_event_listener(listen, EventType.SIGNAL)  # after stem's own listener
    try:
        controller.signal(Signal.RELOAD)
        return heard.wait(timeout)
    finally:
        controller.remove_event_listener(listen)


def reload_and_publish(controller: Controller, address: str, change_again: Callable[[], None],
                       timeout: float = UPLOAD_WAIT_SECONDS) -> Publication | None:
    """SIGNAL RELOAD after a change of the onion service at `address` (its client keys),
    then wait until the HSDirs took its new descriptors. None: tor did not reload.

    An HSDir keeps the descriptor it has unless the new one's revision counter is higher,
    and tor derives that counter from the current second: a change reloaded in the same
    second as the previous upload is refused, and tor would publish it only at its next
    scheduled upload, an hour or two later (a removed owner's key would work until then).
    So after a refusal, `change_again` makes another change (tor rebuilds only on a change)
    that is reloaded in the next second; and we return only once the second of our upload
    is over, so that the next change gets a higher counter."""
    online = bootstrap(controller).progress == 100
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        uploads = Uploads(service_id(address))
        if not _reload_watching(controller, uploads, timeout if online else 0.0):
            return None
        if not uploads.rejected or attempt == PUBLISH_ATTEMPTS:
            break
        _sleep_into_next_second()
        change_again()
    _sleep_into_next_second()
    return Publication(online, uploads)


def _reload_watching(controller: Controller, uploads: Uploads, timeout: float) -> bool:
    changed = threading.Event()

    def listen(event: HSDescEvent) -> None:
        uploads.feed(event.action, str(event.address),
                     event.directory_fingerprint or event.directory or "?", event.reason)
        changed.set()

    controller.add_event_listener(listen, EventType.HS_DESC)
    try:
        if not reload(controller):
            return False
        deadline = time.monotonic() + timeout
        while not uploads.settled and (remaining := deadline - time.monotonic()) > 0:
            changed.wait(min(remaining, 1.0))
            changed.clear()
        return True
    finally:
        controller.remove_event_listener(listen)


def _sleep_into_next_second() -> None:
    time.sleep(1.0 - time.time() % 1.0 + 0.01)


def bootstrap(controller: Controller) -> Bootstrap:
    return parse_bootstrap_phase(str(controller.get_info("status/bootstrap-phase")))


def onion_addresses(controller: Controller) -> list[str]:
    """Onion services added over a control port (ADD_ONION), ours or detached."""
    found: list[str] = []
    for key in ("onions/current", "onions/detached"):
        text = str(controller.get_info(key, ""))
        found += [f"{line.strip()}.onion" for line in text.splitlines() if line.strip()]
    return found


def our_address(settings: Settings, controller: Controller | None = None) -> str | None:
    """ONIONPOST_DOMAIN or tor's hostname file; else the only onion tor reports."""
    try:
        domain = settings.onion_domain()
    except ConfigError:
        domain = ""
    if domain:
        return domain
    if controller is not None:
        addresses = onion_addresses(controller)
        if len(addresses) == 1:
            return addresses[0]
    return None


def owner_address(settings: Settings) -> str | None:
    """The owner onion's address (docs/owner.md), from the hostname file in its
    HiddenServiceDir; None while tor has not written it or this process cannot read it."""
    try:
        words = (settings.owner_onion_dir / "hostname").read_text().split()
    except OSError:
        return None
    return words[0] if words and onion.is_valid(words[0]) else None


def service_descriptor(controller: Controller, address: str) -> str | None:
    """The descriptor tor built for our service (None: tor does not host it, or not yet)."""
    try:
        return str(controller.get_info(f"hs/service/desc/id/{service_id(address)}"))
    except (stem.InvalidArguments, stem.OperationFailed):
        return None


def pow_state(controller: Controller, address: str) -> PowState | None:
    """PoW as our current descriptor announces it; None when tor has no descriptor for us."""
    descriptor = service_descriptor(controller, address)
    if descriptor is None:
        return None
    inner = HiddenServiceDescriptorV3.from_str(descriptor).decrypt(address)
    return parse_pow_params(str(inner))


def descriptor_published(controller: Controller, address: str,
                         timeout: float = 10.0) -> FetchOutcome:
    """Ask the HSDirs for our own descriptor (HSFETCH): the proof that it is published."""
    outcome = FetchOutcome(service_id(address))
    changed = threading.Event()

    def listen(event: HSDescEvent) -> None:
        outcome.feed(event.action, str(event.address), event.directory_fingerprint or "")
        changed.set()

    controller.add_event_listener(listen, EventType.HS_DESC)
    try:
        if controller.msg(f"HSFETCH {outcome.address}").is_ok():
            _await_fetch(outcome, changed, time.monotonic() + timeout)
    finally:
        controller.remove_event_listener(listen)
    return outcome


def _await_fetch(outcome: FetchOutcome, changed: threading.Event, deadline: float) -> None:
    # tor asks the HSDirs one after another: after a failure, a quiet moment means it gave up.
    while (remaining := deadline - time.monotonic()) > 0:
        quiet = not changed.wait(min(FETCH_QUIET_SECONDS, remaining))
        changed.clear()
        if outcome.published or (quiet and outcome.published is False):
            return


# --- `onionpost address` ---------------------------------------------------------------
def address_main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(
        prog="onionpost address",
        description="Print our onion address (from ONIONPOST_DOMAIN, tor's hostname file,"
                    " or tor's ControlPort).")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--owner", action="store_true",
                       help="the owner onion's address instead (ONIONPOST_OWNER_ONION_DIR)")
    which.add_argument("--all", action="store_true",
                       help="both, labelled: 'mail ADDRESS' and 'owner ADDRESS'")
    args = parser.parse_args(argv)
    owner = owner_address(settings) if args.owner or args.all else None
    if args.owner:
        if owner is None:
            raise CommandError(EX_UNAVAILABLE,
                               f"unknown: {settings.owner_onion_dir / 'hostname'} is unreadable")
        print(owner)
        return EX_OK
    address = our_address(settings)
    if address is None:
        address = _address_from_tor(settings)
    if address is None:
        raise CommandError(EX_UNAVAILABLE, f"unknown: {Path(settings.onion_hostname_file)} is"
                           " unreadable and tor reports no single onion service")
    if args.all:
        print(f"mail   {address}   (senders: anything@ this address)")
        print(f"owner  {owner}   (client authorization: make owner-add)" if owner else
              f"owner  unknown ({settings.owner_onion_dir / 'hostname'} is unreadable)")
    else:
        print(address)
    return EX_OK


def _address_from_tor(settings: Settings) -> str | None:
    try:
        with connect(settings) as controller:
            return our_address(settings, controller)
    except TorControlError:
        return None
