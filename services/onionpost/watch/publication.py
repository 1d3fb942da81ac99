"""Publication of our descriptor, from the service tor's ControlPort: HS_DESC upload events,
the consensus times (clock skew), and the heal (HSPOST of the descriptor tor built)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import stem
from stem.control import Controller, EventType
from stem.response.events import HSDescEvent

from onionpost.tor import service_id


@dataclass(frozen=True)
class Uploads:
    """Since the watch started: the last descriptor an HSDir accepted, failures since."""

    last_uploaded: float | None = None
    failed_since: int = 0


class UploadListener:
    """HS_DESC UPLOAD/UPLOADED/FAILED for our onion. A FAILED counts as an upload failure
    only for an HSDir we saw an UPLOAD to: the same event reports failed fetches (HSFETCH)."""

    def __init__(self, address: str) -> None:
        self.sid = service_id(address)
        self._pending: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.uploads = Uploads()

    def feed(self, event: HSDescEvent) -> None:
        if str(event.address) != self.sid:
            return
        hsdir = event.directory_fingerprint or event.directory or "?"
        with self._lock:
            if event.action == "UPLOAD":
                self._pending[hsdir] += 1
            elif event.action == "UPLOADED":
                self._pending[hsdir] -= 1
                self.uploads = Uploads(time.time(), 0)
            elif event.action == "FAILED" and self._pending[hsdir] > 0:
                self._pending[hsdir] -= 1
                self.uploads = Uploads(self.uploads.last_uploaded, self.uploads.failed_since + 1)

    def attach(self, controller: Controller) -> None:
        controller.add_event_listener(self.feed, EventType.HS_DESC)


def heal(controller: Controller, address: str) -> str:
    """Make tor publish our descriptor now; returns what was done, in one line.

    tor's control-spec (§3.26 HSPOST) documents uploading a descriptor to the responsible
    HSDirs; `GETINFO hs/service/desc/id/<addr>` (§3.9) gives the one tor built. SIGHUP /
    SIGNAL RELOAD is not enough: tor keeps an unchanged service's descriptors across a
    reload and re-uploads only when client authorization changed (hs_service.c,
    move_descriptors). When tor has no descriptor for us, a reload is the next step: it
    re-reads the torrc and sets the service up again if it was missing."""
    sid = service_id(address)
    try:
        descriptor = str(controller.get_info(f"hs/service/desc/id/{sid}"))
    except (stem.InvalidArguments, stem.OperationFailed):
        controller.signal(stem.Signal.RELOAD)
        return "tor has no descriptor for this onion: SIGNAL RELOAD sent"
    reply = controller.msg(f"HSPOST HSADDRESS={sid}\n{descriptor}")
    if not reply.is_ok():
        return f"HSPOST refused by tor ({reply})"
    return "descriptor re-uploaded to the responsible HSDirs (HSPOST)"


def consensus_validity(controller: Controller) -> tuple[float, float] | None:
    """(valid-after, valid-until) of tor's current consensus, epoch seconds."""
    try:
        after = controller.get_info("consensus/valid-after")
        until = controller.get_info("consensus/valid-until")
    except (stem.InvalidArguments, stem.OperationFailed, stem.ProtocolError):
        return None
    return validity(str(after), str(until))


def validity(after: str, until: str) -> tuple[float, float] | None:
    """Tor's two times as epoch seconds; None while tor has no consensus (it answers with
    empty values before it has bootstrapped)."""
    try:
        return _epoch(after), _epoch(until)
    except ValueError:
        return None


def _epoch(text: str) -> float:
    return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
