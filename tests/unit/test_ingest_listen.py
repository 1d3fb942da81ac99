"""Ingest's listening socket: Nagle off on accepted connections, and a warning when peers
that do not come through tor would all share one circuit's limits."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from onionpost.ingest.controller import listening_socket, peers_share_one_circuit, warn_if_shared
from onionpost.settings import Settings


def test_accepted_connections_have_nagle_off() -> None:
    """asyncio turns Nagle off only for sockets whose proto says TCP: each multi-line reply
    (EHLO's) then waited for the peer's delayed ACK, ~40 ms."""
    async def accept_one() -> int:
        sock = listening_socket("127.0.0.1:0", reuse_port=False)
        port = sock.getsockname()[1]
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                peer = transport.get_extra_info("socket")
                accepted.set_result(peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        nodelay = await asyncio.wait_for(accepted, 10)
        writer.close()
        server.close()
        return nodelay

    assert asyncio.run(accept_one()) != 0


@pytest.mark.parametrize(("listen", "proxy", "shared"), [
    ("127.0.0.1:2525", False, False),
    ("[::1]:2525", False, False),
    ("localhost:2525", False, False),
    ("0.0.0.0:2525", False, True),
    ("[::]:2525", False, True),
    ("10.1.2.3:2525", False, True),
    ("ingest:2525", False, True),
    ("0.0.0.0:2525", True, False),
])
def test_peers_share_one_circuit_without_proxy_off_loopback(
        listen: str, proxy: bool, shared: bool) -> None:
    settings = Settings(ingest_listen=listen, proxy_protocol=proxy)
    assert peers_share_one_circuit(settings) is shared


def test_the_warning_is_one_line_without_the_address(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="onionpost.ingest")
    warn_if_shared(Settings(ingest_listen="10.1.2.3:2525", proxy_protocol=False))
    warn_if_shared(Settings(ingest_listen="127.0.0.1:2525", proxy_protocol=False))
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "event=proxy_protocol_off" in record.getMessage()
    assert "10.1.2.3" not in record.getMessage()
