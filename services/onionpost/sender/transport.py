"""Connections to onion services through Tor's SOCKS port: the name is resolved by Tor
(never locally) and every destination gets its own circuit (SOCKS isolation)."""

from __future__ import annotations

import hashlib
import socket

from python_socks import ProxyType
from python_socks.sync import Proxy

from onionpost.sender.delivery import Connector


def isolation_username(destination: str) -> str:
    """A SOCKS user name per destination: with IsolateSOCKSAuth (on by default), Tor never
    shares a circuit between two destinations, so no relay links one's correspondents."""
    digest = hashlib.sha256(destination.lower().encode()).hexdigest()[:24]
    return f"onionpost-{digest}"


def tor_connector(socks_host: str, socks_port: int) -> Connector:
    def connect(host: str, port: int, timeout: float) -> socket.socket:
        proxy = Proxy(ProxyType.SOCKS5, socks_host, socks_port,
                      username=isolation_username(host), password="onionpost", rdns=True)
        sock = proxy.connect(host, port, timeout=timeout)
        sock.settimeout(timeout)
        return sock

    return connect
