"""One probe of our onion from outside, as a stranger would reach it: a fresh descriptor
from the HSDirs (HSFETCH), a new isolated circuit (SOCKS auth), `220 <onion>`, EHLO, QUIT."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import stem
from stem.control import Controller, EventType
from stem.descriptor.hidden_service import HiddenServiceDescriptorV3
from stem.response.events import HSDescEvent

from onionpost.setting_values import split_hostport
from onionpost.tor import service_id
from onionpost.tor import socks as tor_socks

if TYPE_CHECKING:
    pass

FETCH_ATTEMPTS = 3  # a client tries further HSDirs when one lacks the descriptor
QUIET_SECONDS = 2.0  # HSFETCH that starts no request within this: tor rate-limited it
# Tor's SOCKS ExtendedErrors (SocksPort ... ExtendedErrors): which step of the path failed.


@dataclass(frozen=True)
class Result:
    """What one probe saw; `stage` names the step that failed (None: reachable)."""

    at: float
    stage: str | None
    detail: str = ""
    descriptor_seconds: float | None = None
    connect_seconds: float | None = None
    latency_seconds: float | None = None  # descriptor fetch to QUIT answered
    intro_points: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        return cls(**{key: data.get(key) for key in cls.__dataclass_fields__})  # type: ignore[arg-type]  # a field older records lack: None


class ProbeFailedError(Exception):
    def __init__(self, stage: str, detail: str) -> None:
        super().__init__(f"{stage}: {detail}")
        self.stage, self.detail = stage, detail


@dataclass(frozen=True)
class Descriptor:
    seconds: float
    intro_points: int


# --- the descriptor: fetched anew, never the cached one ---------------------------------
class _Fetch:
    """HS_DESC events of one HSFETCH for one address."""

    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.requested = 0
        self.failed: list[str] = []
        self.received = False
        self.changed = threading.Event()

    def __call__(self, event: HSDescEvent) -> None:
        if str(event.address) != self.sid:
            return
        if event.action == "REQUESTED":
            self.requested += 1
        elif event.action == "RECEIVED":
            self.received = True
        elif event.action == "FAILED":
            self.failed.append(str(event.reason or "failed"))
        self.changed.set()

    def settled(self) -> bool:
        return self.received or (self.requested > 0 and len(self.failed) >= self.requested)


def fetch_descriptor(controller: Controller, address: str, timeout: float) -> Descriptor:
    """Ask the HSDirs for our descriptor (HSFETCH), up to FETCH_ATTEMPTS of them, as a
    client does; tor stores what it gets, so the SOCKS connect that follows uses it. An
    HSFETCH that tor rate-limits (it asked every HSDir within 15 min) is retried after
    SIGNAL NEWNYM, which clears that memory. Raises ProbeFailedError("descriptor", ...)."""
    sid = service_id(address)
    began = time.monotonic()
    deadline = began + timeout
    reasons: list[str] = []
    for _attempt in range(FETCH_ATTEMPTS):
        fetch = _one_fetch(controller, sid, deadline)
        if fetch.received:
            seconds = time.monotonic() - began
            return Descriptor(seconds, _intro_points(controller, address))
        if fetch.requested == 0:
            controller.signal(stem.Signal.NEWNYM)
            reasons.append("rate-limited")
        reasons += fetch.failed
        if time.monotonic() >= deadline:
            break
    counted = ", ".join(f"{reason} x{count}" if count > 1 else reason
                        for reason, count in Counter(reasons).items())
    raise ProbeFailedError("descriptor", f"HSFETCH: {counted or 'timed out'}")


def _one_fetch(controller: Controller, sid: str, deadline: float) -> _Fetch:
    fetch = _Fetch(sid)
    controller.add_event_listener(fetch, EventType.HS_DESC)
    try:
        reply = controller.msg(f"HSFETCH {sid}")
        if not reply.is_ok():
            raise ProbeFailedError("descriptor", f"HSFETCH refused: {reply}")
        quiet_until = time.monotonic() + QUIET_SECONDS
        while not fetch.settled() and (now := time.monotonic()) < deadline:
            if fetch.requested == 0 and now >= quiet_until:
                break
            fetch.changed.wait(min(0.2, deadline - now))
            fetch.changed.clear()
    finally:
        controller.remove_event_listener(fetch)
    return fetch


def _intro_points(controller: Controller, address: str) -> int:
    try:
        text = str(controller.get_info(f"hs/client/desc/id/{service_id(address)}"))
        inner = HiddenServiceDescriptorV3.from_str(text).decrypt(address)
    except (stem.ControllerError, ValueError) as error:
        raise ProbeFailedError("descriptor", f"unreadable ({type(error).__name__})") from None
    return len(inner.introduction_points)


# --- the SMTP greeting through a new circuit ----------------------------------------------
def open_stream(socks: str, address: str, port: int, timeout: float) -> socket.socket:
    """A stream on a circuit of its own: a new SOCKS username each time (IsolateSOCKSAuth)."""
    isolation = f"watch-{uuid.uuid4().hex}"
    try:
        return tor_socks.connect(split_hostport(socks), address, port, timeout, isolation)
    except tor_socks.CircuitTimeoutError:
        raise ProbeFailedError("connection", "timed out") from None
    except tor_socks.StreamRefusedError as error:
        reply = error.onion_reply
        stage = reply.stage if reply else "connection"
        detail = f"SOCKS {error.code:#04x}" if error.code else error.detail
        raise ProbeFailedError(stage, detail) from None
    except OSError as error:
        detail = f"tor's SOCKS port: {error.strerror or error}"
        raise ProbeFailedError("connection", detail) from None


def smtp_hello(stream: socket.socket, address: str, timeout: float) -> None:
    """Require `220 <our onion>`, then EHLO (250) and QUIT; else ProbeFailedError("banner")."""
    stream.settimeout(timeout)
    reader = stream.makefile("rb")
    try:
        code, first = _reply(reader)
        if code != "220" or address.lower() not in first.lower():
            raise ProbeFailedError("banner", f"greeting {first[:80]!r}")
        stream.sendall(f"EHLO {address}\r\n".encode())
        if (code := _reply(reader)[0]) != "250":
            raise ProbeFailedError("banner", f"EHLO answered {code}")
        stream.sendall(b"QUIT\r\n")
        _reply(reader)
    except (OSError, ValueError) as error:
        raise ProbeFailedError("banner", f"no SMTP answer ({type(error).__name__})") from None
    finally:
        reader.close()


def _reply(reader: Any) -> tuple[str, str]:
    """(code, first line) of one possibly multi-line SMTP reply."""
    first = ""
    for _line in range(100):
        line = reader.readline(1024).decode("ascii", "replace").rstrip("\r\n")
        if not line:
            raise ValueError("connection closed")
        first = first or line
        if line[3:4] != "-":
            return line[:3], first
    raise ValueError("reply too long")


# --- one whole probe ----------------------------------------------------------------------
def probe(controller: Controller, socks: str, address: str, timeout: float,
          port: int = 25) -> Result:
    """Descriptor, circuit, greeting; each step gets what is left of `timeout`."""
    at, began = time.time(), time.monotonic()
    descriptor: Descriptor | None = None
    connect_seconds = None
    try:
        descriptor = fetch_descriptor(controller, address, timeout)
        connecting = time.monotonic()
        stream = open_stream(socks, address, port, max(1.0, timeout - (connecting - began)))
        connect_seconds = time.monotonic() - connecting
        with contextlib.closing(stream):
            smtp_hello(stream, address, max(1.0, timeout - (time.monotonic() - began)))
    except ProbeFailedError as failure:
        return Result(at, failure.stage, failure.detail,
                      descriptor.seconds if descriptor else None, connect_seconds, None,
                      descriptor.intro_points if descriptor else None)
    except (stem.ControllerError, stem.SocketError) as error:
        return Result(at, "descriptor", f"tor's ControlPort: {error}")
    return Result(at, None, "", descriptor.seconds, connect_seconds,
                  time.monotonic() - began, descriptor.intro_points)
