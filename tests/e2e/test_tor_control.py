"""onionpost.tor (stem) against the real tors of the test network; the onion's keys persist."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from onionpost import onion, tor
from onionpost.settings import Settings, load_settings
from tests.e2e.conftest import MailOnion
from tests.e2e.tornet import OnionService, TorNetwork
from tests.support.banner_server import BannerServer
from tests.support.net import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def banner_server() -> Iterator[BannerServer]:
    server = BannerServer(b"220 restart test\r\n")
    yield server
    server.close()


def settings_for(service: OnionService, **overrides: object) -> Settings:
    values: dict[str, object] = {"tor_control": f"127.0.0.1:{service.control_port}",
                                 "tor_cookie_file": service.cookie_file,
                                 "onion_hostname_file": service.hs_dir / "hostname"}
    return load_settings(**{**values, **overrides})


def random_onion_address() -> str:
    """A valid v3 address that no service in the network has."""
    return onion.from_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())


def test_connects_with_the_cookie_and_reads_bootstrap(
        tor_network: TorNetwork, mail_onion: MailOnion) -> None:
    with tor.connect(settings_for(mail_onion.service)) as controller:
        phase = tor.bootstrap(controller)
    assert (phase.progress, phase.summary) == (100, "Done")


def test_wrong_cookie_or_closed_port_is_one_clear_error(
        tmp_path: Path, mail_onion: MailOnion) -> None:
    wrong = tmp_path / "cookie"
    wrong.write_bytes(b"\0" * 32)
    with pytest.raises(tor.TorControlError, match="refused authentication"):
        tor.connect(settings_for(mail_onion.service, tor_cookie_file=wrong))
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(tor.TorControlError, match=f"cannot connect .*127.0.0.1:{port}"):
        tor.connect(load_settings(tor_control=f"127.0.0.1:{port}"))


def test_our_address_from_the_hostname_file_and_from_tor(
        tor_network: TorNetwork, mail_onion: MailOnion, tmp_path: Path) -> None:
    assert tor.our_address(settings_for(mail_onion.service)) == mail_onion.address
    no_file = settings_for(mail_onion.service, onion_hostname_file=tmp_path / "missing")
    with mail_onion.service.controller() as owner:
        added = owner.create_ephemeral_hidden_service({25: 9}, detached=True,
                                                      await_publication=False)
    try:
        with tor.connect(no_file) as controller:
            assert tor.our_address(no_file, controller) == f"{added.service_id}.onion"
    finally:
        with mail_onion.service.controller() as owner:
            owner.remove_ephemeral_hidden_service(added.service_id)


def test_descriptor_is_published_and_an_unknown_one_is_not(mail_onion: MailOnion) -> None:
    with mail_onion.service.controller() as controller:
        ours = tor.descriptor_published(controller, mail_onion.address)
        unknown = tor.descriptor_published(controller, random_onion_address())
    assert ours.published is True
    assert ours.received_from in ours.requested
    assert unknown.published is False
    assert unknown.requested == unknown.failed


def test_pow_state_reads_the_descriptor(mail_onion: MailOnion) -> None:
    with mail_onion.service.controller() as controller:
        pow_on = tor.pow_state(controller, mail_onion.address)
        elsewhere = tor.pow_state(controller, random_onion_address())
    assert pow_on is not None
    assert pow_on.enabled
    assert elsewhere is None  # this tor hosts no such service


def test_onion_address_survives_a_restart_of_the_service_tor(
        tor_network: TorNetwork, banner_server: BannerServer) -> None:
    service = tor_network.add_onion_service("restart", {25: banner_server.port})
    key = (service.hs_dir / "hs_ed25519_secret_key").read_bytes()
    before = service.address
    with tor_network.connect(before, 25, isolation="before") as stream:
        assert stream.recv(100) == b"220 restart test\r\n"
    old_pid = service.tor.process.pid if service.tor.process else None

    service.restart()

    assert service.tor.process is not None and service.tor.process.pid != old_pid
    assert service.address == before
    assert (service.hs_dir / "hostname").read_text().strip() == before
    assert (service.hs_dir / "hs_ed25519_secret_key").read_bytes() == key
    with tor_network.connect(before, 25, isolation="after") as stream:
        assert stream.recv(100) == b"220 restart test\r\n"
    with tor.connect(settings_for(service)) as controller:
        wait_for(lambda: tor.descriptor_published(controller, before).published,
                 timeout=30, what="the restarted service's descriptor")
