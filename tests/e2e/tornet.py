"""A private Tor network on 127.0.0.1 for the e2e tests, as Tor's own chutney makes them.

3 directory authorities + 2 relays + 1 client, started once; one more tor per onion
service. Every process is ours, stopped by PID; tor also exits when the test process dies
(__OwningControllerProcess).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import smtplib
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from python_socks import ProxyError
from python_socks.sync import Proxy
from stem.control import Controller, EventType
from stem.response.events import HSDescEvent

from tests.support.net import free_port, port_open

AUTHORITIES = 3
RELAYS = 2
TOR_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}
# The first vote must come after the relays uploaded their descriptors (~1.5 s after start).
FIRST_VOTE_AFTER = 3
VOTE_AND_DIST_DELAY = 4
INITIAL_VOTING_INTERVAL = 5
STOP_GRACE_SECONDS = 10.0

AUTHORITY_OPTIONS = [
    "AuthoritativeDirectory 1", "V3AuthoritativeDirectory 1",
    f"TestingV3AuthInitialVotingInterval {INITIAL_VOTING_INTERVAL}",
    "TestingV3AuthInitialVoteDelay 2", "TestingV3AuthInitialDistDelay 2",
    "V3AuthVotingInterval 10", "V3AuthVoteDelay 2", "V3AuthDistDelay 2",
    "V3AuthNIntervalsValid 2", "TestingDirAuthVoteGuard *", "TestingDirAuthVoteHSDir *",
    "AuthDirVoteStableGuaranteeMinUptime 0", "AuthDirVoteStableGuaranteeMTBF 0",
]
RELAY_OPTIONS = ["Address 127.0.0.1", "SocksPort 0", "ExitRelay 0",
                 "ExitPolicy reject *:*", "AssumeReachable 1"]
# The shipped torrc's defenses (tor/torrc): on here too, so the tests prove mail still flows.
SERVICE_DEFENSES = ["HiddenServicePoWDefensesEnabled 1", "HiddenServiceEnableIntroDoSDefense 1",
                    "HiddenServiceMaxStreams 20", "HiddenServiceMaxStreamsCloseCircuit 1"]


class TorNetworkError(RuntimeError):
    """The test network did not come up; the message names the step and the log tail."""


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               logs: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TorNetworkError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs()}")
        time.sleep(0.1)


@dataclass
class TorProcess:
    """One tor: its DataDirectory holds torrc, notice.log and its keys."""

    nickname: str
    directory: Path
    options: list[str]
    arguments: list[str] = field(default_factory=list)
    control_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    owner: Controller | None = None

    @property
    def torrc(self) -> Path:
        return self.directory / "torrc"

    @property
    def log_path(self) -> Path:
        return self.directory / "notice.log"

    @property
    def cookie_file(self) -> Path:
        return self.directory / "control_auth_cookie"

    def start(self, common: list[str], empty_file: Path) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.torrc.write_text("\n".join([
            f"Nickname {self.nickname}", f"DataDirectory {self.directory}",
            f"ControlPort 127.0.0.1:{self.control_port}", "CookieAuthentication 1",
            f"Log notice file {self.log_path}", *common, *self.options, ""]))
        self.process = subprocess.Popen(
            ["tor", "--defaults-torrc", str(empty_file), "-f", str(self.torrc),
             *self.arguments],
            env={**os.environ, **TOR_ENV}, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def controller(self, timeout: float = 15.0) -> Controller:
        """An authenticated controller (cookie); the caller closes it."""
        self.owner_controller(timeout)
        return self._connect(timeout)

    def owner_controller(self, timeout: float = 15.0) -> Controller:
        """The fixture's own connection, open for the life of this tor. stem sends
        TAKEOWNERSHIP on the first connection from the owning pid (and clears the pid
        option), so tor then exits when this connection closes: also when pytest dies.
        Every later connection is an ordinary one that may be closed freely."""
        if self.owner is None:
            self.owner = self._connect(timeout)
        return self.owner

    def _connect(self, timeout: float) -> Controller:
        wait_until(lambda: self.exited() or port_open(self.control_port), timeout,
                   f"{self.nickname}'s ControlPort", self.log_tail)
        if self.exited():
            raise TorNetworkError(f"{self.nickname} exited\n{self.log_tail()}")
        controller = Controller.from_port("127.0.0.1", self.control_port)
        controller.authenticate()
        return controller

    def getinfo(self, key: str) -> str:
        return str(self.owner_controller().get_info(key))

    def exited(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def signal(self, signum: int) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signum)

    def terminate(self) -> None:
        if self.owner is not None:
            self.owner.close()
            self.owner = None
        self.signal(signal.SIGTERM)

    def wait_stopped(self) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        self.terminate()
        self.wait_stopped()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return f"({self.nickname}: no log)"
        return "\n".join(f"  {self.nickname}: {line}" for line in text[-lines:])


class UploadTracker:
    """HS_DESC listener: done when every UPLOAD got its UPLOADED or FAILED and one landed."""

    def __init__(self) -> None:
        self.pending: Counter[str] = Counter()
        self.uploaded = 0
        self.failed = 0
        self.lock = threading.Lock()

    def __call__(self, event: HSDescEvent) -> None:
        hsdir = event.directory_fingerprint or event.directory or "?"
        with self.lock:
            if event.action == "UPLOAD":
                self.pending[hsdir] += 1
            elif event.action in ("UPLOADED", "FAILED"):
                self.pending[hsdir] -= 1
                self.uploaded += event.action == "UPLOADED"
                self.failed += event.action == "FAILED"

    def done(self) -> bool:
        with self.lock:
            return self.uploaded > 0 and all(count <= 0 for count in self.pending.values())


@dataclass
class OnionService:
    """One onion service: its own tor, HiddenServiceDir kept across restarts."""

    name: str
    hs_dir: Path
    tor: TorProcess
    network: TorNetwork
    address: str = ""

    @property
    def control_port(self) -> int:
        return self.tor.control_port

    @property
    def cookie_file(self) -> Path:
        return self.tor.cookie_file

    def controller(self) -> Controller:
        return self.tor.controller()

    def start(self, await_upload: bool = True) -> None:
        """Start the tor and return once its descriptor reached every HSDir it tried
        (await_upload=False: once tor answers on its ControlPort)."""
        tracker = UploadTracker()
        self.tor.start(self.network.common_options(), self.network.empty_file)
        controller = self.tor.owner_controller()
        if not await_upload:
            wait_until(lambda: (self.hs_dir / "hostname").exists(), 30,
                       f"{self.name}'s hostname file", self.tor.log_tail)
            self.address = (self.hs_dir / "hostname").read_text().strip().lower()
            return
        controller.add_event_listener(tracker, EventType.HS_DESC)
        try:
            wait_until(tracker.done, 60, f"{self.name}'s descriptor upload", self.tor.log_tail)
        finally:
            controller.remove_event_listener(tracker)
        self.address = (self.hs_dir / "hostname").read_text().strip().lower()

    def restart(self) -> None:
        """Stop and start this tor (same keys); the client forgets the old descriptor."""
        self.tor.stop()
        self.start()
        self.network.new_identity()


class TorNetwork:
    """The network: start() brings up authorities, relays and the client (~10 s)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.owner_pid = os.getpid()
        self.empty_file = base / "empty"
        self.authorities = [TorProcess(f"auth{n}", base / f"auth{n}", []) for n in
                            range(AUTHORITIES)]
        self.relays = [TorProcess(f"relay{n}", base / f"relay{n}", []) for n in range(RELAYS)]
        self.socks_port = free_port()
        self.client = TorProcess("client", base / "client",
                                 [f"SocksPort 127.0.0.1:{self.socks_port} ExtendedErrors"])
        self.services: dict[str, OnionService] = {}
        self.dir_authority_lines: list[str] = []
        self.timings: dict[str, float] = {}
        self._began = time.monotonic()

    # --- the API the tests use ------------------------------------------------------
    def client_controller(self) -> Controller:
        return self.client.controller()

    def add_onion_service(self, name: str, ports: dict[int, int], *,
                          proxy_protocol: bool = False,
                          client_auth_public_keys: Iterable[str] = (),
                          options: Iterable[str] = (),
                          await_upload: bool = True) -> OnionService:
        """One more tor serving `ports` (virtual -> 127.0.0.1 port); returns once the
        descriptor is uploaded (await_upload=False: once tor runs, for a tor told by
        `options` not to publish)."""
        hs_dir = self.base / f"hs-{name}"
        hs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_authorized_clients(hs_dir, list(client_auth_public_keys))
        options = ["SocksPort 0", f"HiddenServiceDir {hs_dir}",
                   *(f"HiddenServicePort {virtual} 127.0.0.1:{target}"
                     for virtual, target in ports.items()), *SERVICE_DEFENSES, *options]
        if proxy_protocol:
            options.append("HiddenServiceExportCircuitID haproxy")
        nickname = ("hs" + re.sub(r"[^A-Za-z0-9]", "", name))[:19]
        service = OnionService(name, hs_dir, TorProcess(nickname, self.base / name, options),
                               self)
        self.services[name] = service
        service.start(await_upload)
        self.wait_client_bootstrapped()
        return service

    def add_client_auth(self, address: str, private_key_b64: str) -> None:
        service_id = address.removesuffix(".onion")
        with self.client_controller() as controller:
            reply = controller.msg(f"ONION_CLIENT_AUTH_ADD {service_id} x25519:{private_key_b64}")
        # 251: key replaced; 252: registered, and a cached descriptor decrypted with it.
        if reply.content()[0][0] not in ("250", "251", "252"):
            raise TorNetworkError(f"ONION_CLIENT_AUTH_ADD refused: {reply}")

    def new_identity(self) -> None:
        """SIGNAL NEWNYM on the client: new circuits, cached descriptors forgotten."""
        with self.client_controller() as controller:
            controller.msg("SIGNAL NEWNYM")

    def connect(self, host: str, port: int, isolation: str | None = None,
                timeout: float = 30.0, attempts: int = 3) -> socket.socket:
        """A TCP stream through the client's SOCKS port; the name is resolved by tor.
        `isolation` becomes the SOCKS username: another value, another circuit."""
        self.wait_client_bootstrapped()
        auth = f"{isolation}:x@" if isolation else ""
        proxy = Proxy.from_url(f"socks5://{auth}127.0.0.1:{self.socks_port}", rdns=True)
        for attempt in range(attempts):
            try:
                return proxy.connect(host, port, timeout=timeout)
            except (ProxyError, OSError):
                if attempt == attempts - 1:
                    raise
                self.new_identity()  # clears a cached descriptor failure, then retry
                time.sleep(1)
        raise AssertionError("unreachable")

    def smtp(self, address: str, port: int = 25, isolation: str | None = None,
             timeout: float = 30.0) -> smtplib.SMTP:
        """An smtplib.SMTP connected to address:port through tor (banner read). Like
        smtplib.SMTP(host), raises SMTPConnectError when the greeting is not 220."""
        client = TorSMTP(self, isolation, timeout)
        code, reply = client.connect(address, port)
        if code != 220:
            client.close()
            raise smtplib.SMTPConnectError(code, reply)
        return client

    # --- bring-up -------------------------------------------------------------------
    def common_options(self) -> list[str]:
        return ["TestingTorNetwork 1", "ShutdownWaitLength 0",
                f"GeoIPFile {self.empty_file}", f"GeoIPv6File {self.empty_file}",
                f"__OwningControllerProcess {self.owner_pid}", *self.dir_authority_lines]

    def start(self) -> TorNetwork:
        began = time.monotonic()
        self.base.mkdir(parents=True, exist_ok=True)
        self.empty_file.write_text("")
        self._prepare_relays()
        self._prepare_keys()
        self.timings["keys"] = time.monotonic() - began
        offset = str(voting_start_offset(time.time()))  # now: key generation takes 1-7 s
        for authority in self.authorities:
            authority.arguments = ["--TestingV3AuthVotingStartOffset", offset]
        for tor in [*self.authorities, *self.relays]:
            tor.start(self.common_options(), self.empty_file)
        self.timings["launched"] = time.monotonic() - began
        for tor in [*self.authorities, *self.relays]:
            tor.owner_controller()
        self._wait_consensus()
        self.timings["consensus"] = time.monotonic() - began
        for relay in self.relays:
            relay.signal(signal.SIGHUP)  # out of the 404 back-off of the early fetches
        self._wait_microdescriptors()
        self.timings["caches"] = time.monotonic() - began
        self.client.start(self.common_options(), self.empty_file)
        self.client.owner_controller()
        self._began = began
        return self

    def wait_client_bootstrapped(self, timeout: float = 60) -> None:
        """The client bootstraps (~2 s) while the first onion service starts: both wait
        here, at the first stream or the first service, not in start()."""
        if "client" in self.timings:
            return
        wait_until(lambda: "PROGRESS=100" in self.client.getinfo("status/bootstrap-phase"),
                   timeout, "client bootstrap 100 %", self.client.log_tail)
        self.timings["client"] = time.monotonic() - self._began

    def _prepare_relays(self) -> None:
        for tor in [*self.authorities, *self.relays]:
            tor.options = [f"ORPort 127.0.0.1:{free_port()}", *RELAY_OPTIONS, *tor.options]
        for authority in self.authorities:
            authority.options += [f"DirPort 127.0.0.1:{free_port()}", *AUTHORITY_OPTIONS]

    def _prepare_keys(self) -> None:
        nodes = [*self.authorities, *self.relays]
        with ThreadPoolExecutor(len(nodes)) as pool:
            certificates = list(pool.map(self._authority_certificate, self.authorities))
            fingerprints = list(pool.map(self._fingerprint, nodes))
        for authority, v3ident, fingerprint in zip(self.authorities, certificates,
                                                   fingerprints, strict=False):
            or_port, dir_port = option_port(authority, "ORPort"), option_port(authority,
                                                                                "DirPort")
            self.dir_authority_lines.append(
                f"DirAuthority {authority.nickname} orport={or_port} no-v2 v3ident={v3ident}"
                f" 127.0.0.1:{dir_port} {fingerprint}")

    def _authority_certificate(self, authority: TorProcess) -> str:
        keys = authority.directory / "keys"
        keys.mkdir(mode=0o700, parents=True, exist_ok=True)
        subprocess.run(
            ["tor-gencert", "--create-identity-key", "--passphrase-fd", "0",
             "-i", "keys/authority_identity_key", "-s", "keys/authority_signing_key",
             "-c", "keys/authority_certificate", "-m", "12",
             "-a", f"127.0.0.1:{option_port(authority, 'DirPort')}"],
            cwd=authority.directory, input=b"\n", check=True, capture_output=True)
        text = (keys / "authority_certificate").read_text()
        return re.search(r"^fingerprint (\w+)", text, re.MULTILINE).group(1)

    def _fingerprint(self, tor: TorProcess) -> str:
        tor.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        subprocess.run(
            ["tor", "--defaults-torrc", str(self.empty_file), "-f", str(self.empty_file),
             "--DataDirectory", str(tor.directory), "--ORPort", "1",
             "--Nickname", tor.nickname, "--list-fingerprint", "--quiet"],
            env={**os.environ, **TOR_ENV}, check=True, capture_output=True)
        return (tor.directory / "fingerprint").read_text().split()[1]

    def _wait_consensus(self) -> None:
        consensus = self.authorities[0].directory / "cached-microdesc-consensus"
        nicknames = {tor.nickname for tor in [*self.authorities, *self.relays]}
        wait_until(lambda: nicknames <= guard_hsdir_nicknames(consensus), 60,
                   "a consensus listing every relay as Guard+HSDir", self._logs)

    def _wait_microdescriptors(self) -> None:
        nodes = [*self.authorities, *self.relays]
        wait_until(lambda: all(count_microdescriptors(tor) >= len(nodes) for tor in nodes),
                   30, "every relay to cache all microdescriptors", self._logs)

    def _logs(self) -> str:
        tors = [*self.authorities, *self.relays, self.client,
                *(service.tor for service in self.services.values())]
        return "\n".join(tor.log_tail(6) for tor in tors)

    def stop(self) -> None:
        tors = [*(service.tor for service in self.services.values()), self.client,
                *self.relays, *self.authorities]
        for tor in tors:
            tor.terminate()
        for tor in tors:
            tor.wait_stopped()


class TorSMTP(smtplib.SMTP):
    """smtplib.SMTP whose socket is a stream through the test network's SOCKS port."""

    def __init__(self, network: TorNetwork, isolation: str | None, timeout: float) -> None:
        self._network = network
        self._isolation = isolation
        super().__init__(timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = self._network.connect(host, port, self._isolation, timeout)
        sock.settimeout(timeout)
        return sock


def voting_start_offset(now: float) -> int:
    """--TestingV3AuthVotingStartOffset that puts the first vote ~3 s after now: tor votes
    VOTE_AND_DIST_DELAY before the start of an interval (intervals counted from midnight)."""
    first_interval_start = int(now) + FIRST_VOTE_AFTER + VOTE_AND_DIST_DELAY
    return first_interval_start % INITIAL_VOTING_INTERVAL


def option_port(tor: TorProcess, option: str) -> int:
    line = next(line for line in tor.options if line.startswith(option + " "))
    return int(line.rsplit(":", 1)[1])


def guard_hsdir_nicknames(consensus: Path) -> set[str]:
    """Nicknames that the microdesc consensus lists with both the Guard and HSDir flags."""
    try:
        text = consensus.read_text(errors="replace")
    except OSError:
        return set()
    found: set[str] = set()
    nickname = ""
    for line in text.splitlines():
        if line.startswith("r "):
            nickname = line.split()[1]
        elif line.startswith("s ") and {"Guard", "HSDir"} <= set(line.split()[1:]):
            found.add(nickname)
    return found


def count_microdescriptors(tor: TorProcess) -> int:
    with contextlib.suppress(Exception):
        return tor.getinfo("md/all").count("onion-key")
    return 0


def write_authorized_clients(hs_dir: Path, public_keys: list[str]) -> None:
    if not public_keys:
        return
    clients = hs_dir / "authorized_clients"
    clients.mkdir(mode=0o700, exist_ok=True)
    for number, key in enumerate(public_keys):
        (clients / f"client{number}.auth").write_text(f"descriptor:x25519:{key}\n")
