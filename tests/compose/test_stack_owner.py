"""The owner onion in the stack (issue 14, docs/owner.md), on the stack test_stack.py used
(package scope; this file runs after it): tor publishes a second onion with client
authorization always on, its ports reach the owner sshd, ntfy and rq-dashboard, the sshd
takes keys only and runs nothing but fetch-serve, and `make owner-add/list/remove` change
tor's authorized_clients/ and the sshd's keys, and reload tor.

What tor loaded is read from tor itself: INFO log events over the ControlPort around a
`SIGNAL RELOAD` (tor logs "Loaded a client authorization key file NAME." for each .auth
file it accepts; none loaded means client authorization is off)."""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from onionpost.onion import is_valid
from tests.compose.stack import HERE, ROOT, Stack, run, wait_until

pytestmark = pytest.mark.compose

OWNER_DIR = "/var/lib/tor/owner"
CLIENTS = f"{OWNER_DIR}/authorized_clients"
LOCK = "_lock.auth"
SSH = "ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR" \
      " -o ConnectTimeout=20 -p 2222"

# Runs in the cli container (it holds the control cookie): AUTHENTICATE, subscribe to INFO
# log events, SIGNAL RELOAD, then a GETINFO as a barrier (tor reloads and loads the keys
# before it reads the next command); prints "loaded NAME" per .auth file tor accepted and
# any warning about client authorization.
TOR_LOADS = r"""
import os, pathlib, re, socket, sys
cookie = pathlib.Path(os.environ["ONIONPOST_TOR_COOKIE_FILE"]).read_bytes().hex()
sock = socket.create_connection(("tor", 9051), timeout=60)
replies = sock.makefile("rb")

def command(line):
    sock.sendall(line.encode() + b"\r\n")
    events = []
    while True:
        reply = replies.readline().decode().rstrip("\r\n")
        if reply.startswith("650"):
            events.append(reply)
        elif reply[3:4] == " ":
            if not reply.startswith("250"):
                sys.exit(f"{line.split()[0]}: {reply}")
            return events

command(f"AUTHENTICATE {cookie}")
command("SETEVENTS INFO WARN")
events = command("SIGNAL RELOAD") + command("GETINFO version")
for event in events:
    loaded = re.search(r"Loaded a client authorization key file (\S+)\.$", event)
    if loaded:
        print("loaded", loaded.group(1))
    elif event.startswith("650 WARN") and "client authorization" in event.lower():
        print("warning", event)
"""

# Runs in the cli container: tor's configuration as loaded (GETINFO config-text).
TOR_CONFIG = r"""
import os, pathlib, socket
cookie = pathlib.Path(os.environ["ONIONPOST_TOR_COOKIE_FILE"]).read_bytes().hex()
sock = socket.create_connection(("tor", 9051), timeout=30)
sock.sendall(f"AUTHENTICATE {cookie}\r\nGETINFO config-text\r\nQUIT\r\n".encode())
print(sock.makefile("rb").read().decode())
"""

# Runs in a container sharing tor's network namespace: the first bytes each target sends
# (argv: host:port ...; an HTTP GET for ports other than 2222).
BANNERS = r"""
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            if port != "2222":
                sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            print(target, sock.recv(40).split(b"\r\n")[0].decode(errors="replace"))
    except OSError as error:
        print(target, "unreachable", type(error).__name__)
"""


@pytest.fixture(scope="module")
def fetch_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("owner-key") / "id_ed25519"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "laptop@test", "-f", str(key)])
    return key


def make(stack: Stack, target: str, *variables: str, check: bool = True
         ) -> subprocess.CompletedProcess[str]:
    """The Makefile's target, on this test project (COMPOSE names its files and name)."""
    compose = (f"docker compose -p {stack.project} -f {ROOT / 'compose.yaml'}"
               f" -f {HERE / 'override.yaml'}")
    return run(["make", "--no-print-directory", "-C", str(ROOT), target, f"COMPOSE={compose}",
                *variables], env=stack.env, check=check, timeout=300)


def cli(stack: Stack, *args: str) -> str:
    return stack.compose("run", "--rm", "--no-deps", "-T", "cli", *args).stdout


def in_tor(stack: Stack, *command: str, check: bool = True) -> str:
    return stack.compose("exec", "-T", "tor", *command, check=check).stdout


def tor_loads(stack: Stack) -> list[str]:
    return stack.run_python(TOR_LOADS).stdout.splitlines()


def reloads(stack: Stack) -> int:
    """tor's reloads not asked for by its entrypoint (a target address changed)."""
    logs = stack.compose("logs", "--no-log-prefix", "tor").stdout
    return logs.count("Received reload signal (hup)") - logs.count(
        "onionpost-tor: onion service target changed") - logs.count("lock entry was missing")


def from_owner_network(stack: Stack, script: str, key: Path | None = None
                       ) -> subprocess.CompletedProcess[str]:
    """A shell script in a one-off container of the owner image, on the owner network only
    (the tor side of it); KEY in its environment is the private key given, if any."""
    env = [] if key is None else ["-e", f"KEY={key.read_text()}"]
    return stack.compose("run", "--rm", "--no-deps", "-T", *env, "--entrypoint", "sh",
                         "owner", "-c", f'umask 077; printf "%s" "$KEY" > /tmp/id; {script}',
                         check=False)


def address_on(stack: Stack, service: str, network: str) -> str:
    [container] = [c for c in stack.containers()
                   if c["Config"]["Labels"]["com.docker.compose.service"] == service]
    return str(container["NetworkSettings"]["Networks"][f"{stack.project}_{network}"]
               ["IPAddress"])


def owner_ports(stack: Stack) -> dict[str, str]:
    """The owner onion's HiddenServicePort lines in tor's loaded configuration."""
    ports: dict[str, str] = {}
    service = None
    for line in stack.run_python(TOR_CONFIG).stdout.splitlines():
        words = line.removeprefix("250+").removeprefix("250-").split()
        if words[:1] == ["HiddenServiceDir"]:
            service = words[1]
        elif words[:1] == ["HiddenServicePort"] and service == OWNER_DIR:
            ports[words[1]] = words[2]
    return ports


def test_the_owner_onion_has_its_own_address_and_client_authorization_on(
        stack: Stack) -> None:
    mail, owner = (line.split()[1] for line in cli(stack, "address", "--all").splitlines())
    assert is_valid(owner) and owner != mail
    assert in_tor(stack, "cat", f"{OWNER_DIR}/hostname").strip() == owner
    assert cli(stack, "address", "--owner").strip() == owner
    assert f"owner     {owner} (owner onion" in cli(stack, "status")
    # tor itself accepts the lock entry: client authorization is on for the owner onion
    # (without the entry tor loads no key: this list is empty).
    assert tor_loads(stack) == ["loaded _lock.auth"]
    lock = in_tor(stack, "cat", f"{CLIENTS}/{LOCK}")
    assert re.fullmatch(r"descriptor:x25519:[A-Z2-7]{52}\n", lock), lock
    # The mail onion keeps serving senders without it.
    assert in_tor(stack, "ls", "-A", "/var/lib/tor/onionpost/authorized_clients") == ""


def test_a_missing_lock_entry_is_restored_and_tor_reloaded(stack: Stack) -> None:
    before = in_tor(stack, "cat", f"{CLIENTS}/{LOCK}")
    in_tor(stack, "rm", f"{CLIENTS}/{LOCK}")
    restored = wait_until(lambda: in_tor(stack, "cat", f"{CLIENTS}/{LOCK}", check=False),
                          timeout=60,
                          what="the entrypoint to restore the lock entry")
    assert restored != before  # a new random key: the old one is gone for good
    logs = stack.compose("logs", "--no-log-prefix", "tor").stdout
    assert "owner onion lock entry was missing, restored; reloading tor" in logs
    assert tor_loads(stack).count("loaded _lock.auth") == 1


def test_owner_onion_ports_go_to_sshd_ntfy_and_the_dashboard(stack: Stack) -> None:
    expected = {"22": f"{address_on(stack, 'owner', 'owner')}:2222",
                "80": f"{address_on(stack, 'ntfy', 'internal')}:80",
                "9181": f"{address_on(stack, 'rq-dashboard', 'dashboard')}:9181"}
    wait_until(lambda: owner_ports(stack) == expected, timeout=60,
               what=f"tor's owner onion ports to be {expected}")
    [tor] = [c for c in stack.containers()
             if c["Config"]["Labels"]["com.docker.compose.service"] == "tor"]
    banners = run(["docker", "run", "--rm", "--network", f"container:{tor['Id']}",
                   "python:3.11-slim-bookworm", "python", "-c", BANNERS,
                   *expected.values()]).stdout
    seen = dict(line.split(" ", 1) for line in banners.splitlines())
    assert seen[expected["22"]].startswith("SSH-2.0-OpenSSH_"), seen
    assert "Debian" not in seen[expected["22"]]  # DebianBanner no
    assert seen[expected["80"]].startswith("HTTP/1."), seen
    assert seen[expected["9181"]] == "HTTP/1.1 401 UNAUTHORIZED", seen


def test_only_tor_reaches_the_owner_sshd(stack: Stack) -> None:
    owner_network = stack.network("owner")
    members = {container["Name"].split("-")[-2] for container in
               owner_network["Containers"].values()}
    assert members == {"tor", "owner"}, members
    assert owner_network["Internal"] is True
    ingest = stack.compose("exec", "-T", "ingest", "python", "-c", BANNERS,
                           f"{address_on(stack, 'owner', 'owner')}:2222").stdout
    assert "unreachable" in ingest, ingest


def test_owner_add_installs_both_keys_and_reloads_tor(stack: Stack, fetch_key: Path) -> None:
    reloaded = reloads(stack)
    public_key = Path(f"{fetch_key}.pub").read_text().strip()
    printed = make(stack, "owner-add", "NAME=laptop", f"SSH_KEY={public_key}").stdout
    assert reloads(stack) == reloaded + 1
    assert in_tor(stack, "ls", "-A", CLIENTS).split() == [LOCK, "laptop.auth"]
    # The private half printed once is the pair of the public half tor now holds.
    [line] = re.findall(r"^[a-z2-7]{56}:descriptor:x25519:([A-Z2-7]{52})$", printed, re.M)
    private = X25519PrivateKey.from_private_bytes(base64.b32decode(line + "===="))
    public = base64.b32encode(private.public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)).decode().rstrip("=")
    assert in_tor(stack, "cat", f"{CLIENTS}/laptop.auth").strip() == \
        f"descriptor:x25519:{public}"
    assert sorted(tor_loads(stack)) == ["loaded _lock.auth", "loaded laptop.auth"]
    keys = from_owner_network(stack, "cat /var/lib/onionpost/owner-ssh/authorized_keys")
    blob = public_key.split()[1]
    assert keys.stdout.splitlines() == [
        f'restrict,command="onionpost fetch-serve" ssh-ed25519 {blob} laptop']
    listed = make(stack, "owner-list").stdout
    assert re.search(r"^laptop\s+\d{4}-\d\d-\d\d \d\d:\d\d UTC\s+ssh$", listed, re.M), listed
    assert blob not in listed and public not in listed and LOCK not in listed


def test_sshd_takes_no_password_and_gives_the_key_nothing_but_fetch_serve(
        stack: Stack, fetch_key: Path) -> None:
    # The server offers publickey and nothing else: a password (given by an askpass
    # program, no terminal here) is never even asked for.
    password = from_owner_network(stack, (
        "printf '#!/bin/sh\\necho hunter2\\n' > /tmp/pw && chmod 700 /tmp/pw && "
        f"SSH_ASKPASS=/tmp/pw SSH_ASKPASS_REQUIRE=force {SSH} -o PubkeyAuthentication=no"
        " -o PreferredAuthentications=password,keyboard-interactive onionpost@owner id"))
    assert password.returncode == 255
    assert "Permission denied (publickey)." in password.stderr, password.stderr
    # With the key: whatever the client asks for, fetch-serve answers (its greeting); no
    # shell runs `id`.
    command = from_owner_network(stack, f"{SSH} -i /tmp/id onionpost@owner sh -c id"
                                        " </dev/null", key=fetch_key)
    assert command.stdout == "ONIONPOST-FETCH 1\n", (command.stdout, command.stderr)
    assert "uid=" not in command.stdout + command.stderr
    pty = from_owner_network(stack, f"{SSH} -tt -i /tmp/id onionpost@owner </dev/null",
                             key=fetch_key)
    assert "PTY allocation request failed" in pty.stderr, pty.stderr
    tunnel = from_owner_network(stack, f"{SSH} -i /tmp/id -W ingest:2525 onionpost@owner"
                                       " </dev/null", key=fetch_key)
    # sshd refuses the channel (DisableForwarding): a tunnel to ingest is no way in.
    assert tunnel.returncode == 255 and "stdio forwarding failed" in tunnel.stderr, \
        tunnel.stderr
    effective = stack.compose("exec", "-T", "owner", "/usr/sbin/sshd", "-T", "-f",
                              "/etc/onionpost-owner/sshd_config").stdout.splitlines()
    for setting in ("passwordauthentication no", "kbdinteractiveauthentication no",
                    "authenticationmethods publickey", "permittty no", "disableforwarding yes",
                    "forcecommand onionpost fetch-serve", "permituserrc no"):
        assert setting in effective, setting


def test_fetch_moves_a_message_through_the_owner_sshd(stack: Stack, fetch_key: Path) -> None:
    # A message planted with a name older than any other: --limit 1 fetches just it.
    token = secrets.token_hex(8)
    body = f"Subject: owner {token}\n\nfetched through the owner sshd\n"
    name = f"1000000000.M1P1Q{token}.owner,S={len(body)}"
    plant = from_owner_network(stack, (
        f"printf '%s' '{body}' > /var/mail/onionpost/inbox/tmp/{name} && "
        f"mv /var/mail/onionpost/inbox/tmp/{name} /var/mail/onionpost/inbox/new/{name}"))
    assert plant.returncode == 0, plant.stderr
    fetched = from_owner_network(stack, (
        f"onionpost fetch --limit 1 --to /tmp/box --ssh '{SSH}' -i /tmp/id onionpost@owner"
        f" && cat /tmp/box/new/{name}"), key=fetch_key)
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.endswith(body), fetched.stdout
    gone = from_owner_network(stack, f"ls /var/mail/onionpost/inbox/new/{name}")
    assert gone.returncode != 0


def test_owner_remove_revokes_both_keys_and_reloads_tor(stack: Stack, fetch_key: Path) -> None:
    reloaded = reloads(stack)
    make(stack, "owner-remove", "NAME=laptop")
    assert reloads(stack) == reloaded + 1
    assert in_tor(stack, "ls", "-A", CLIENTS).split() == [LOCK]
    assert tor_loads(stack) == ["loaded _lock.auth"]
    refused = from_owner_network(stack, f"{SSH} -i /tmp/id onionpost@owner </dev/null",
                                 key=fetch_key)
    assert refused.returncode == 255
    assert "Permission denied (publickey)." in refused.stderr, refused.stderr
    assert "no owners yet" in make(stack, "owner-list").stdout
    missing = make(stack, "owner-remove", "NAME=laptop", check=False)
    assert missing.returncode != 0 and "no owner 'laptop'" in missing.stderr


def test_make_targets_say_how_to_call_them(stack: Stack) -> None:
    for target in ("owner-add", "owner-remove"):
        bare = make(stack, target, check=False)
        assert bare.returncode != 0 and f"make {target} NAME=laptop" in bare.stderr


def test_nothing_of_the_owner_side_is_published_on_the_host(stack: Stack) -> None:
    config = json.loads(stack.compose("--profile", "tools", "config", "--format",
                                      "json").stdout)
    services: dict[str, Any] = config["services"]
    assert not services["owner"].get("ports")
    assert services["owner"]["networks"].keys() == {"owner"}
    assert services["owner"]["read_only"] is True
    assert services["owner"]["cap_drop"] == ["ALL"]
    volumes = {v["target"]: v.get("read_only", False) for v in services["owner"]["volumes"]}
    assert volumes == {"/var/mail/onionpost": False, "/var/lib/onionpost/owner-ssh": True,
                       "/var/lib/onionpost/owner-hostkeys": False}
