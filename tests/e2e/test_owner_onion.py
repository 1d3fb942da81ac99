"""The owner onion over the private Tor network: client authorization kept on by the lock
entry, `owner add` + `owner join` + `onionpost fetch owner`, ntfy through the onion, and
`owner remove` effective for a fresh client after tor's reload (no restart)."""

from __future__ import annotations

import getpass
import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from stem.control import EventType
from stem.response.events import HSDescEvent

from onionpost.owner.invitation import parse
from onionpost.owner.registry import LOCK_FILE, OwnerAccess
from onionpost.tor import control
from onionpost.tor.socks import StreamRefusedError, connect
from tests.e2e.tornet import OnionService, TorNetwork, TorProcess, UploadTracker, wait_until
from tests.support.fetch_rig import FetchRig
from tests.support.net import free_port
from tests.support.ntfy_double import NtfyDouble
from tests.support.sshd import ONIONPOST

pytestmark = pytest.mark.e2e
ONIONPOST_CMD = [sys.executable, "-m", "onionpost"]
TOPIC = "owner-alerts"


@dataclass
class OwnerStack:
    network: TorNetwork
    rig: FetchRig
    ntfy: NtfyDouble
    service: OnionService
    server_env: dict[str, str]
    home: Path

    @property
    def laptop_env(self) -> dict[str, str]:
        """The laptop: its own HOME; its tor is the network's client."""
        client = self.network.client
        return {**os.environ, "HOME": str(self.home),
                "ONIONPOST_TOR_SOCKS": f"127.0.0.1:{self.network.socks_port}",
                "ONIONPOST_TOR_CONTROL": f"127.0.0.1:{client.control_port}",
                "ONIONPOST_TOR_COOKIE_FILE": str(client.cookie_file)}

    def owner(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`onionpost owner ...` on the server: add and remove return once tor published."""
        return subprocess.run([*ONIONPOST_CMD, "owner", *args], capture_output=True,
                              text=True, env=self.server_env, timeout=120)

    def join(self, invitation: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ONIONPOST_CMD, "owner", "join", "--torrc", "/nonexistent",
                               *args], input=invitation, capture_output=True, text=True,
                              env=self.laptop_env, timeout=60)


@pytest.fixture(scope="module")
def owner_stack(tor_network: TorNetwork,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnerStack]:
    """The stack's owner onion: port 22 -> a real sshd whose keys only `owner add` writes,
    port 80 -> ntfy. The HiddenServiceDir holds only the lock entry when tor starts."""
    base = tmp_path_factory.mktemp("owner-onion")
    with FetchRig(base) as rig:
        rig.sshd.authorized_keys.write_text("")  # the rig's own key: not authorized here
        ntfy = NtfyDouble().start()
        hs_dir = tor_network.base / "hs-owner"
        hs_dir.mkdir(mode=0o700)
        OwnerAccess(hs_dir, rig.sshd.authorized_keys).ensure_lock()  # as tor's entrypoint
        service = tor_network.add_onion_service(
            "owner", {22: rig.sshd.port, 80: ntfy.server.server_address[1]})
        server_env = {
            **os.environ, "ONIONPOST_OWNER_ONION_DIR": str(hs_dir),
            "ONIONPOST_OWNER_SSH_KEYS": str(rig.sshd.authorized_keys),
            "ONIONPOST_OWNER_SSH_USER": getpass.getuser(),
            "ONIONPOST_OWNER_SERVE_COMMAND": f"{ONIONPOST} fetch-serve --maildir {rig.remote}",
            "ONIONPOST_TOR_CONTROL": f"127.0.0.1:{service.control_port}",
            "ONIONPOST_TOR_COOKIE_FILE": str(service.cookie_file),
            "ONIONPOST_NTFY_TOPIC": TOPIC}
        try:
            yield OwnerStack(tor_network, rig, ntfy, service, server_env, base / "home")
        finally:
            ntfy.stop()


def _refusal(socks_port: int, address: str, port: int = 22) -> int | None:
    """tor's SOCKS reply code for a connect to address:port; None: it connected."""
    try:
        connect(("127.0.0.1", socks_port), address, port, timeout=120).close()
    except StreamRefusedError as error:
        return error.code
    return None


def test_with_only_the_lock_entry_the_owner_onion_needs_a_key(owner_stack: OwnerStack
                                                              ) -> None:
    clients = owner_stack.service.hs_dir / "authorized_clients"
    assert [path.name for path in clients.iterdir()] == [LOCK_FILE]

    code = _refusal(owner_stack.network.socks_port, owner_stack.service.address)

    assert code == 0xF4
    assert "Accepted publickey" not in owner_stack.rig.sshd.log.read_text()


def test_add_and_join_then_fetch_owner_drains_the_box(owner_stack: OwnerStack) -> None:
    stack = owner_stack
    stack.rig.deliver(12, size=3000, flagged=2)
    key = stack.join("", "--print-ssh-key")
    assert key.returncode == 0, key.stderr

    added = stack.owner("add", "laptop", "--ssh-key", key.stdout.strip())
    assert added.returncode == 0, added.stderr
    assert "tor reloaded: in effect now, published to" in added.stdout
    # forget the descriptor cached by the first test (NEWNYM also drops keys added over the
    # ControlPort: so before `join`, which adds one)
    stack.network.new_identity()
    joined = stack.join(added.stdout)
    assert joined.returncode == 0, joined.stderr
    assert "tor: the key is in use now" in joined.stdout
    assert "ready: onionpost fetch owner" in joined.stdout

    fetch = subprocess.run(
        [*ONIONPOST_CMD, "fetch", "--ssh", f"ssh -F {stack.home / '.ssh' / 'config'}",
         "owner", "--to", str(stack.rig.local)],
        capture_output=True, text=True, env=stack.laptop_env, timeout=300)

    assert fetch.returncode == 0, fetch.stderr
    assert fetch.stdout.startswith("fetched 12 messages")
    assert stack.rig.local_messages() == stack.rig.sent
    assert stack.rig.remote_names() == []


def test_ntfy_answers_through_the_owner_onion(owner_stack: OwnerStack) -> None:
    """Runs after `add` + `join`: the laptop's tor holds the key."""
    stream = connect(("127.0.0.1", owner_stack.network.socks_port),
                     owner_stack.service.address, 80, timeout=120)
    web = http.client.HTTPConnection(owner_stack.service.address, 80, timeout=60)
    web.sock = stream
    body = json.dumps({"topic": TOPIC, "title": "through tor", "message": "hello"})
    web.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
    reply = web.getresponse()
    answer = json.loads(reply.read())
    web.close()

    assert reply.status == 200
    assert answer["topic"] == TOPIC and answer["message"] == "hello"
    assert [message["title"] for message in owner_stack.ntfy.messages(TOPIC)] == ["through tor"]


def test_list_shows_names_and_dates_never_keys(owner_stack: OwnerStack) -> None:
    listing = owner_stack.owner("list")
    keys = (owner_stack.service.hs_dir / "authorized_clients" / "laptop.auth").read_text()

    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split()[0] == "laptop"
    assert "_lock" not in listing.stdout
    assert keys.split(":")[-1].strip() not in listing.stdout
    assert "AAAA" not in listing.stdout


def test_after_remove_a_fresh_client_with_the_old_key_cannot_connect(
        owner_stack: OwnerStack, tmp_path: Path) -> None:
    stack = owner_stack
    phone = stack.owner("add", "phone")
    assert phone.returncode == 0, phone.stderr
    removed = stack.owner("remove", "laptop")
    assert removed.returncode == 0, removed.stderr
    assert "tor reloaded: in effect now, published to" in removed.stdout
    assert "laptop" not in stack.rig.sshd.authorized_keys.read_text()
    laptop_auth_dir = stack.home / ".config" / "onionpost" / "onion_auth"
    assert list(laptop_auth_dir.iterdir())  # what `join` wrote for the laptop's tor

    socks_port = free_port()
    fresh = TorProcess("fresh", tmp_path / "fresh", [
        f"SocksPort 127.0.0.1:{socks_port} ExtendedErrors",
        f"ClientOnionAuthDir {laptop_auth_dir}"])
    fresh.start(stack.network.common_options(), stack.network.empty_file)
    try:
        wait_until(lambda: "PROGRESS=100" in fresh.getinfo("status/bootstrap-phase"), 60,
                   "the fresh client's bootstrap", fresh.log_tail)
        with_old_key = _refusal(socks_port, stack.service.address)
        # the control: the same fresh tor with the key of an owner still there connects
        phone_key = parse(phone.stdout, "unused").private_key_b64
        with fresh.controller() as controller:
            service_id = stack.service.address.removesuffix(".onion")
            controller.msg("SIGNAL NEWNYM")  # forgets the cached descriptor (and keys added
            # over the ControlPort: so before adding one)
            controller.msg(f"ONION_CLIENT_AUTH_ADD {service_id} x25519:{phone_key}")
        with_a_kept_key = _refusal(socks_port, stack.service.address)
    finally:
        fresh.stop()

    assert with_old_key == 0xF5, hex(with_old_key or 0)  # "wrong client authorization"
    assert with_a_kept_key is None


def test_a_change_in_the_second_of_the_last_upload_is_still_published(
        owner_stack: OwnerStack) -> None:
    """An HSDir keeps its descriptor unless the new one's revision counter (tor's current
    second) is higher: a change reloaded in the second of tor's previous upload is refused,
    and tor would publish it only an hour or two later. reload_and_publish sees the refusal
    and changes again in the next second. The fixture's own connection: a new one from this
    process would take ownership of tor (see OwnerStack)."""
    stack = owner_stack
    access = OwnerAccess(stack.service.hs_dir, stack.rig.sshd.authorized_keys)
    controller = stack.service.tor.owner_controller()
    ours = stack.service.address.removesuffix(".onion")
    events: list[tuple[str, str | None]] = []

    def listen(event: HSDescEvent) -> None:
        if str(event.address) == ours and event.action in ("UPLOADED", "FAILED"):
            events.append((event.action, event.reason))

    publications: list[control.Publication | None] = []
    controller.add_event_listener(listen, EventType.HS_DESC)
    try:
        for _ in range(8):  # until our reload falls in the second of tor's upload
            tracker = UploadTracker()
            controller.add_event_listener(tracker, EventType.HS_DESC)
            access.add("tick", None, "true")
            assert control.reload(controller)
            wait_until(tracker.done, 60, "the upload after the test's own reload",
                       stack.service.tor.log_tail)
            controller.remove_event_listener(tracker)
            del events[:]
            access.remove("tick", then=lambda: publications.append(control.reload_and_publish(
                controller, stack.service.address, access.renew_lock_entry)))
            if ("FAILED", "UPLOAD_REJECTED") in events:
                break
    finally:
        controller.remove_event_listener(listen)

    refused = [index for index, event in enumerate(events)
               if event == ("FAILED", "UPLOAD_REJECTED")]
    assert refused, f"tor's upload and the change never fell in one second: {events}"
    publication = publications[-1]
    assert publication is not None and publication.published, publication
    assert ("UPLOADED", None) in events[refused[-1]:]
