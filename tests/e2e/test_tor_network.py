"""The test network itself: every socket of every tor stays on loopback."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import MailOnion
from tests.e2e.tornet import TorNetwork
from tests.support.servers import IngestProcess

pytestmark = pytest.mark.e2e

TABLES = ("tcp", "tcp6", "udp", "udp6")


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def decode(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """/proc/net/tcp{,6} addresses: 32-bit words in host (little-endian) order."""
    host = hex_address.split(":")[0]
    words = [bytes.fromhex(host[i:i + 8])[::-1] for i in range(0, len(host), 8)]
    return ipaddress.ip_address(b"".join(words))


def inet_endpoints(pid: int) -> list[tuple[str, str, str]]:
    """(table, local, remote) for every IP socket the process holds."""
    inodes = socket_inodes(pid)
    found = []
    for table in TABLES:
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                found.append((table, str(decode(fields[1])), str(decode(fields[2]))))
    return found


def loopback(address: str, unconnected_ok: bool = False) -> bool:
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped:
        parsed = parsed.ipv4_mapped
    return parsed.is_loopback or (unconnected_ok and parsed.is_unspecified)


def private(endpoint: tuple[str, str, str]) -> bool:
    """Bound to loopback (never 0.0.0.0) and, when connected, to a loopback peer."""
    _, local, remote = endpoint
    return loopback(local) and loopback(remote, unconnected_ok=True)


def test_every_tor_socket_is_on_loopback(
        tor_network: TorNetwork, mail_onion: MailOnion,
        onion_ingest: Callable[..., IngestProcess]) -> None:
    onion_ingest()
    with tor_network.connect(mail_onion.address, 25, isolation="loopback-check"):
        tors = [tor_network.client, *tor_network.authorities, *tor_network.relays,
                *(service.tor for service in tor_network.services.values())]
        endpoints = {tor.nickname: inet_endpoints(tor.process.pid)
                     for tor in tors if tor.process}
    assert len(endpoints) == len(tors)
    assert all(endpoints.values())  # every tor holds sockets: the check looked at something
    outside = {name: [endpoint for endpoint in found if not private(endpoint)]
               for name, found in endpoints.items()}
    assert not any(outside.values()), outside
