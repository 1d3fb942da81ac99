"""Connections to onion services through Tor's SOCKS port: the name is resolved by Tor
(never locally) and every destination gets its own circuit (SOCKS isolation)."""

from __future__ import annotations

import errno
import hashlib
import socket

from python_socks import ProxyConnectionError, ProxyError, ProxyType
from python_socks.sync import Proxy

from onionpost.sender.delivery import (
    Connector,
    DestinationRefusedError,
    TorNotRunningError,
    UnreachableError,
)
from onionpost.tor_socks import reply_code

# Tor's SOCKS5 replies for onion services (SocksPort ... ExtendedErrors, tor 0.4.3+).
ONION_REPLIES = {
    0xF0: "onion service not found (offline for a while, or it never existed)",
    0xF1: "the onion service's descriptor is invalid",
    0xF2: "introduction to the onion service failed",
    0xF3: "rendezvous with the onion service failed",
    0xF4: "the onion service requires client authorization",
    0xF5: "wrong client authorization for the onion service",
    0xF6: "Tor says this onion address is invalid (not a usable ed25519 key)",
    0xF7: "introduction to the onion service timed out",
}
INVALID_ADDRESS = 0xF6


def isolation_username(destination: str) -> str:
    """A SOCKS user name per destination: with IsolateSOCKSAuth (on by default), Tor never
    shares a circuit between two destinations, so no relay links one's correspondents."""
    digest = hashlib.sha256(destination.lower().encode()).hexdigest()[:24]
    return f"onionpost-{digest}"


def tor_not_running(error: ProxyConnectionError) -> bool:
    """Our own SOCKS port refused the connection: nothing listens there, tor is not
    running (not the network or the destination: retrying in seconds will not help)."""
    return error.errno == errno.ECONNREFUSED


def tor_connector(socks_host: str, socks_port: int) -> Connector:
    def connect(host: str, port: int, timeout: float) -> socket.socket:
        proxy = Proxy(ProxyType.SOCKS5, socks_host, socks_port,
                      username=isolation_username(host), password="onionpost", rdns=True)
        try:
            sock = proxy.connect(host, port, timeout=timeout)
        except ProxyConnectionError as error:
            if tor_not_running(error):
                raise TorNotRunningError(socks_host, socks_port) from None
            raise
        except ProxyError as error:
            code = reply_code(error)
            if code == INVALID_ADDRESS:
                raise DestinationRefusedError(ONION_REPLIES[code]) from None
            reason = ONION_REPLIES.get(code or -1, str(error))
            raise UnreachableError(f"cannot reach the onion service: {reason}") from None
        sock.settimeout(timeout)
        return sock

    return connect
