"""The private Tor network, one per test session (see tornet.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.tornet import OnionService, TorNetwork
from tests.support.net import free_port
from tests.support.servers import IngestProcess

E2E_DIR = Path(__file__).parent
logging.getLogger("stem").setLevel(logging.WARNING)  # stem logs every closed socket at INFO


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e needs the network: mark it e2e (`-m "not e2e"` skips)."""
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def tor_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TorNetwork]:
    network = TorNetwork(tmp_path_factory.mktemp("tornet"))
    try:
        network.start()
        yield network
    finally:
        network.stop()


@dataclass
class MailOnion:
    """A PROXY-protocol onion service whose port 25 goes to 127.0.0.1:ingest_port. Tests
    start their own ingest on that port (start_ingest(ingest_listen=...))."""

    service: OnionService
    ingest_port: int

    @property
    def address(self) -> str:
        return self.service.address

    @property
    def ingest_listen(self) -> str:
        return f"127.0.0.1:{self.ingest_port}"


@pytest.fixture(scope="session")
def mail_onion(tor_network: TorNetwork) -> MailOnion:
    port = free_port()
    service = tor_network.add_onion_service("mail", {25: port}, proxy_protocol=True)
    return MailOnion(service, port)


def ingest_behind(start_ingest: Callable[..., IngestProcess], address: str, port: int,
                  **settings: object) -> IngestProcess:
    """start_ingest behind an onion service: its domain, its target port, PROXY protocol on."""
    settings = {"proxy_protocol": True, "proxy_timeout": 5, **settings}
    ingest = start_ingest(domain=address, ingest_listen=f"127.0.0.1:{port}", **settings)
    ingest.port = port
    return ingest


@pytest.fixture
def onion_ingest(start_ingest: Callable[..., IngestProcess],
                 mail_onion: MailOnion) -> Callable[..., IngestProcess]:
    """start_ingest for the mail onion."""

    def start(**settings: object) -> IngestProcess:
        return ingest_behind(start_ingest, mail_onion.address, mail_onion.ingest_port,
                             **settings)

    return start
