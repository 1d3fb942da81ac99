"""Streams through tor's SOCKS port: the one connect (name resolved by tor, never locally;
one circuit per destination), tor's onion replies (0xF0-0xF7) with what each means and
whether trying later can help, and python-socks' errors translated here, once."""

from __future__ import annotations

import errno
import hashlib
import re
import socket
from dataclasses import dataclass

from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError, ProxyType
from python_socks.sync import Proxy

_REPLY_CODE = re.compile(r"reply code: 0x([0-9a-f]{2})\b", re.IGNORECASE)


@dataclass(frozen=True)
class OnionReply:
    """One of tor's extended SOCKS5 replies (SocksPort ExtendedErrors, tor >= 0.4.3; tor's
    socks-extensions spec), worded for two readers: someone sending mail to the onion, and
    the owner reaching their own onion with their own tor."""

    permanent: bool  # trying again later cannot help until someone changes a key or address
    for_sender: str
    for_owner: str
    stage: str  # the step of reaching an onion that failed, as the watch reports it


# Why each is (not) permanent, the same for sendmail (temporary = 75 "try later", or the
# outbox's retries; permanent = an error now, a bounce from the outbox) and for tor-connect:
# F0/F2/F3/F7 are about a service that is offline, busy or badly connected just now.
# F1 (descriptor fails to parse or verify) is the service's or an HSDir's fault and passes
# when a good descriptor is published: like a DNS failure, it is worth the retries.
# F4/F5 (client authorization missing or refused) and F6 (no ed25519 key) do not change by
# waiting: this tor needs another key, or the address is wrong.
ONION_REPLIES = {
    0xF0: OnionReply(False, "onion service not found (offline for a while, or it never existed)",
                     "onion service descriptor not found (offline, or a wrong address)",
                     "descriptor"),
    0xF1: OnionReply(False, "the onion service's descriptor is invalid",
                     "onion service descriptor is invalid",
                     "descriptor"),
    0xF2: OnionReply(False, "introduction to the onion service failed",
                     "onion service introduction failed",
                     "introduction"),
    0xF3: OnionReply(False, "rendezvous with the onion service failed",
                     "onion service rendezvous failed",
                     "connection"),
    0xF4: OnionReply(True, "the onion service requires client authorization",
                     "onion client authorization missing: this machine's tor has no key for it",
                     "descriptor"),
    0xF5: OnionReply(True, "wrong client authorization for the onion service",
                     "onion client authorization wrong: the key this tor has is not accepted",
                     "descriptor"),
    0xF6: OnionReply(True, "Tor says this onion address is invalid (not a usable ed25519 key)",
                     "invalid onion address",
                     "connection"),
    0xF7: OnionReply(False, "introduction to the onion service timed out",
                     "onion service introduction timed out",
                     "introduction"),
}
INVALID_ADDRESS = 0xF6


class SocksError(OSError):
    """tor's SOCKS port did not give us the stream; `detail` says why, in python-socks' words."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SocksPortUnreachableError(SocksError):
    """Nothing answers on tor's SOCKS port; `refused`: the port said no at once (nothing
    listens there: tor is not running), rather than a timeout or a network error."""

    def __init__(self, detail: str, refused: bool = False) -> None:
        super().__init__(detail)
        self.refused = refused


class CircuitTimeoutError(SocksError, TimeoutError):
    """tor did not answer the connect in time (building onion circuits can be slow)."""


class StreamRefusedError(SocksError):
    """tor answered the connect with a refusal: `code` is its SOCKS reply code, if known."""

    def __init__(self, detail: str, code: int | None) -> None:
        super().__init__(detail)
        self.code = code

    @property
    def onion_reply(self) -> OnionReply | None:
        return ONION_REPLIES.get(self.code) if self.code is not None else None

    @property
    def permanent(self) -> bool:
        reply = self.onion_reply
        return reply is not None and reply.permanent


def reply_code(error: ProxyError) -> int | None:
    """The SOCKS reply code; python-socks only keeps codes of RFC 1928, so Tor's own
    (0xF0-0xF7) are read back from its message."""
    if error.error_code is not None:
        return int(error.error_code)
    match = _REPLY_CODE.search(str(error))
    return int(match.group(1), 16) if match else None


def refusal(error: ProxyError) -> StreamRefusedError:
    return StreamRefusedError(str(error), reply_code(error))


def nothing_listens(error: ProxyConnectionError) -> bool:
    """Our own SOCKS port refused the connection: tor is not running (not the network or
    the destination: retrying in seconds will not help)."""
    return error.errno == errno.ECONNREFUSED


def isolation_username(destination: str) -> str:
    """A SOCKS user name per destination: with IsolateSOCKSAuth (on by default), Tor never
    shares a circuit between two destinations, so no relay links one's correspondents."""
    digest = hashlib.sha256(destination.lower().encode()).hexdigest()[:24]
    return f"onionpost-{digest}"


def connect(socks: tuple[str, int], host: str, port: int, timeout: float,
            isolation: str | None = None) -> socket.socket:
    """A stream to host:port through tor on its own circuit (one per destination, or one per
    `isolation` name); SocksError says why not."""
    proxy = Proxy(ProxyType.SOCKS5, *socks, username=isolation or isolation_username(host),
                  password="onionpost", rdns=True)
    try:
        return proxy.connect(host, port, timeout=timeout)
    except ProxyConnectionError as error:
        raise SocksPortUnreachableError(str(error.strerror), nothing_listens(error)) from None
    except ProxyTimeoutError as error:
        raise CircuitTimeoutError(str(error)) from None
    except ProxyError as error:
        raise refusal(error) from None
