"""`onionpost fetch` to an owner-only onion: sshd behind a client-authorized onion service
on the private Tor network, reached through `onionpost tor-connect` as ssh's ProxyCommand."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from onionpost.tor.client_auth import OwnerKey
from onionpost.tor.socks import isolation_username
from tests.e2e.tornet import OnionService, TorNetwork
from tests.support.fetch_rig import FetchRig

pytestmark = pytest.mark.e2e


@dataclass
class OwnerOnion:
    rig: FetchRig
    service: OnionService
    key: OwnerKey
    env: dict[str, str]
    ssh_config: Path

    @property
    def destination(self) -> str:
        return f"{getpass.getuser()}@{self.service.address}"


@pytest.fixture(scope="module")
def owner_onion(tor_network: TorNetwork,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnerOnion]:
    """sshd on 127.0.0.1 (forced-command key) published as port 22 of an onion that only
    the owner's x25519 key may use. The ssh config has no ProxyCommand: fetch adds its own."""
    key = OwnerKey.generate()
    with FetchRig(tmp_path_factory.mktemp("fetch-onion")) as rig:
        service = tor_network.add_onion_service(
            "fetch", {22: rig.sshd.port}, client_auth_public_keys=[key.public_b32])
        host_key = rig.sshd.host_key.with_suffix(".pub").read_text().split()
        known_hosts = rig.directory / "known_hosts_onion"
        known_hosts.write_text(f"{service.address} {host_key[0]} {host_key[1]}\n")
        config = rig.directory / "ssh_config_onion"
        config.write_text(
            f"Host *.onion\n  IdentityFile {rig.key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {known_hosts}\n  StrictHostKeyChecking yes\n"
            "  BatchMode yes\n  ConnectTimeout 120\n")
        env = {**os.environ, "ONIONPOST_TOR_SOCKS": f"127.0.0.1:{tor_network.socks_port}"}
        yield OwnerOnion(rig, service, key, env, config)


def _fetch(onion: OwnerOnion) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "onionpost", "fetch", "--ssh", f"ssh -F {onion.ssh_config}",
         onion.destination, "--to", str(onion.rig.local)],
        capture_output=True, text=True, env=onion.env, timeout=300)


def test_without_the_owner_key_tor_refuses(owner_onion: OwnerOnion) -> None:
    owner_onion.rig.deliver(3)

    connect = subprocess.run(
        [sys.executable, "-m", "onionpost", "tor-connect", owner_onion.service.address, "22"],
        capture_output=True, text=True, env=owner_onion.env, timeout=300, stdin=subprocess.DEVNULL)
    fetch = _fetch(owner_onion)

    assert connect.returncode == 69, connect.stderr
    assert "onion client authorization missing" in connect.stderr
    assert "SOCKS error 0xf4" in connect.stderr
    assert fetch.returncode == 75, fetch.stderr
    assert "SOCKS error 0xf4" in fetch.stderr
    assert fetch.stderr.count("\n") == 1
    assert len(owner_onion.rig.remote_names()) == 3
    assert "Accepted publickey" not in owner_onion.rig.sshd.log.read_text()


def test_with_the_owner_key_fetch_works_through_tor(tor_network: TorNetwork,
                                                    owner_onion: OwnerOnion) -> None:
    tor_network.add_client_auth(owner_onion.service.address, owner_onion.key.private_b64)
    owner_onion.rig.deliver(40, size=5000, flagged=5)

    result = _fetch(owner_onion)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"fetched {len(owner_onion.rig.sent)} messages")
    assert owner_onion.rig.local_messages() == owner_onion.rig.sent
    assert owner_onion.rig.remote_names() == []
    assert "Accepted publickey" in owner_onion.rig.sshd.log.read_text()
    # tor-connect's stream had a circuit of its own (SOCKS isolation, as sendmail's).
    with tor_network.client_controller() as controller:
        circuits = str(controller.get_info("circuit-status"))
    username = isolation_username(owner_onion.service.address)
    service_id = owner_onion.service.address.removesuffix(".onion")
    own = [line for line in circuits.splitlines() if f'SOCKS_USERNAME="{username}"' in line]
    assert own, f"no circuit isolated for the owner's onion: {circuits}"
    assert all(f"REND_QUERY={service_id}" in line for line in own)
