"""Tor's hop replaced by a direct connection, for sendmail tests without a Tor network:
onion domain -> a 127.0.0.1 port (a closed port: the destination is down). Only the hop
is replaced: the SMTP that runs over it is real, against real ingest processes."""

from __future__ import annotations

import socket
from collections import Counter

from onionpost.sender.delivery import Connector


class Network:
    """Records every connection sendmail opens, per onion domain."""

    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports
        self.connections: Counter[str] = Counter()

    def connector(self) -> Connector:
        def connect(host: str, port: int, timeout: float) -> socket.socket:
            assert port == 25
            self.connections[host] += 1
            return socket.create_connection(("127.0.0.1", self.ports[host]), timeout)

        return connect
