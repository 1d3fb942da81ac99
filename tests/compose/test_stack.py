"""The whole stack on a real Docker engine: compose.yaml as shipped, with the test override
(tests/compose/override.yaml: the ntfy test double in place of ntfy, small mailbox limits).

The tests share one stack (package scope: test_stack_owner.py, which runs after this file,
uses it too) and run in file order: mail, then scale, flood,
restart, then the lockdown (Redis's password and network, tor's control cookie, jobs that
must not run, rq-dashboard's login); each asserts on state it created itself."""

from __future__ import annotations

import base64
import json
import secrets
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from onionpost.onion import is_valid
from tests.compose.stack import DockerEngine, Stack, run, wait_until

pytestmark = pytest.mark.compose

MAX_MESSAGES = 5  # ONIONPOST_MAX_MESSAGES in override.yaml
SENDER = "alice@pv4ozjdmhrgbmeexr2uu5jelr5sfdrjwgjqsfgmosmxmkcd4oquexoyd.onion"

# Runs in a one-off container on the internal network. Speaks to ingest as tor does: a
# PROXY v1 header first (HiddenServiceExportCircuitID haproxy), one circuit per message.
# argv: onion token count first_circuit; prints one reply code per message.
SEND = r"""
import smtplib, socket, sys
onion, token, count, first = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

class TorSMTP(smtplib.SMTP):
    circuit = 0
    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection((host, port), timeout)
        sock.sendall(b"PROXY TCP6 fc00:dead:beef:4dad::0:%x ::1 %d 25\r\n"
                     % (self.circuit, self.circuit % 65536))
        return sock

codes = []
for n in range(count):
    TorSMTP.circuit = first + n
    message = (f"From: SENDER\r\nTo: owner@{onion}\r\nSubject: {token} {n}\r\n"
               f"Message-ID: <{token}.{n}@test>\r\n\r\nhello {token} {n}\r\n")
    try:
        with TorSMTP("ingest", 2525, timeout=20) as smtp:
            smtp.sendmail("SENDER", [f"owner@{onion}"], message)
        codes.append(250)
    except smtplib.SMTPResponseException as error:
        codes.append(error.smtp_code)
    except smtplib.SMTPRecipientsRefused as error:
        codes.append(next(iter(error.recipients.values()))[0])
    except smtplib.SMTPServerDisconnected:
        codes.append(0)
print(" ".join(map(str, codes)))
""".replace("SENDER", SENDER)

# Runs in the ingest container: names of the Maildir files (new/, cur/) holding argv[1].
FIND = r"""
import pathlib, sys
box = pathlib.Path("/var/mail/onionpost/inbox")
for path in sorted(box.glob("*/*")):
    if path.parent.name in ("new", "cur") and sys.argv[1].encode() in path.read_bytes():
        print(path.name)
"""

# Runs in the ingest container: the Maildir file argv[1] (in new/ or cur/).
SHOW = r"""
import pathlib, sys
box = pathlib.Path("/var/mail/onionpost/inbox")
print(next(box.glob("*/" + sys.argv[1])).read_text())
"""

# Runs in a container: exit 0 if a TCP connection to argv[1]:argv[2] opens, 1 if not.
CONNECT = r"""
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
except OSError as error:
    print(type(error).__name__, error)
    sys.exit(1)
"""


def onion_address(stack: Stack) -> str:
    return stack.compose("run", "--rm", "--no-deps", "-T", "cli", "address").stdout.strip()


def send(stack: Stack, onion: str, token: str, count: int, first_circuit: int) -> list[int]:
    out = stack.run_python(SEND, onion, token, str(count), str(first_circuit)).stdout
    return [int(code) for code in out.split()]


def stored(stack: Stack, token: str) -> list[str]:
    return stack.python("ingest", FIND, token).stdout.split()


def ntfy_messages(stack: Stack) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{stack.ntfy_port}/_double/messages"
    with urllib.request.urlopen(url, timeout=5) as response:
        return list(json.load(response))


def tor_target(stack: Stack) -> str:
    torrc = stack.compose("exec", "-T", "tor", "cat", "/tmp/torrc").stdout
    [line] = [line for line in torrc.splitlines() if line.startswith("HiddenServicePort 25 ")]
    return line.split()[2]


def containers_of(stack: Stack, service: str) -> list[dict[str, Any]]:
    return [c for c in stack.containers()
            if c["Config"]["Labels"]["com.docker.compose.service"] == service]


def ingest_address(stack: Stack) -> str:
    [ingest] = containers_of(stack, "ingest")
    networks = ingest["NetworkSettings"]["Networks"]
    return str(networks[f"{stack.project}_internal"]["IPAddress"])


def wait_tor_points_at_ingest(stack: Stack, what: str) -> None:
    wait_until(lambda: tor_target(stack) == f"{ingest_address(stack)}:2525", timeout=30,
               what=what)


def test_tor_writes_an_onion_address(stack: Stack) -> None:
    address = onion_address(stack)
    assert is_valid(address), address
    hostname = stack.compose("exec", "-T", "tor", "cat", "/var/lib/tor/onionpost/hostname")
    assert hostname.stdout.strip() == address


def test_tor_points_the_onion_service_at_ingest(stack: Stack) -> None:
    # ingest starts after tor: the entrypoint puts ingest's address into the torrc (it looks
    # every 5 s) and reloads tor.
    wait_tor_points_at_ingest(stack, "tor to point at ingest")


def test_message_from_the_internal_network_lands_in_the_mail_volume(stack: Stack) -> None:
    token = f"compose-{secrets.token_hex(6)}"
    assert send(stack, onion_address(stack), token, 1, first_circuit=1) == [250]
    files = stored(stack, token)
    assert len(files) == 1
    text = stack.python("ingest", SHOW, files[0]).stdout
    assert "Received: " in text and f"hello {token} 0" in text


def test_scale_notifier_to_three(stack: Stack) -> None:
    stack.up("--scale", "notifier=3")
    notifiers = containers_of(stack, "notifier")
    assert len(notifiers) == 3
    assert all(c["State"]["Health"]["Status"] == "healthy" for c in notifiers)


def test_flood_pauses_ingest_and_alerts_once_with_three_notifiers(stack: Stack) -> None:
    stack.up("--scale", "notifier=3")  # three workers on the notify queue: no duplicates
    onion = onion_address(stack)
    assert ntfy_messages(stack) == []
    already = len(stored(stack, ""))
    codes = send(stack, onion, f"flood-{secrets.token_hex(6)}", MAX_MESSAGES + 3,
                 first_circuit=100)
    accepted = codes.count(250)
    assert already + accepted == MAX_MESSAGES, codes
    assert all(code in (421, 452) for code in codes[accepted:]), codes

    def paused() -> bool:
        return send(stack, onion, "after-pause", 1, first_circuit=200) == [421]

    wait_until(paused, timeout=60, what="ingest to answer 421 (paused)")
    wait_until(lambda: ntfy_messages(stack), timeout=60, what="an ntfy alert")
    time.sleep(8)  # the guardian sweeps every 2 s: a duplicate would show up by now
    alerts = ntfy_messages(stack)
    assert len(alerts) == 1, alerts
    assert alerts[0]["priority"] == 5


def test_down_then_up_keeps_mail_address_and_passwords(stack: Stack) -> None:
    address = onion_address(stack)
    mail = stored(stack, "")
    passwords = generated_secrets(stack)
    assert mail
    stack.down()
    assert stack.compose("ps", "-a", "-q").stdout.split() == []
    stack.up()
    assert onion_address(stack) == address
    assert stored(stack, "") == mail
    assert generated_secrets(stack) == passwords
    wait_tor_points_at_ingest(stack, "tor to point at the new ingest container")


def test_only_the_web_uis_are_published_and_on_loopback(stack: Stack) -> None:
    published = set()
    for container in stack.containers():
        service = container["Config"]["Labels"]["com.docker.compose.service"]
        for port, bindings in (container["NetworkSettings"]["Ports"] or {}).items():
            for binding in bindings or []:
                published.add((service, port, binding["HostIp"]))
    assert published == {("ntfy", "80/tcp", "127.0.0.1"),
                         ("rq-dashboard", "9181/tcp", "127.0.0.1")}
    assert stack.compose("port", "ingest", "2525", check=False).returncode != 0


def test_ingest_cannot_connect_outside_its_network(stack: Stack) -> None:
    # A listener on the host, on the address of ntfy's egress bridge: reachable from a
    # container that has a way out (ntfy: the control), not from ingest (internal network
    # only). Docker 20.10 routes internal networks to the host: compose.yaml closes that.
    gateway = stack.network("ntfy-egress")["IPAM"]["Config"][0]["Gateway"]
    with socket.socket() as listener:
        listener.bind((gateway, 0))
        listener.listen(8)
        port = str(listener.getsockname()[1])
        assert stack.python("ntfy", CONNECT, gateway, port, check=False).returncode == 0
        assert stack.python("ingest", CONNECT, gateway, port, check=False).returncode == 1


# Runs in a container with our settings: Redis without the password, then with it.
REDIS_AUTH = r"""
import redis
from onionpost import events, settings
try:
    redis.Redis(host="redis", port=6379, socket_timeout=3).ping()
    print("without: PONG")
except redis.AuthenticationError as error:
    print("without: refused", type(error).__name__)
print("with:", "PONG" if events.connect(settings.load_settings().redis_url).ping() else "?")
"""

# Runs in a container: exit 0 if Redis answers a PING at argv[1]:6379 (PONG, or NOAUTH when
# it wants a password). A TCP connection alone proves nothing: this machine's egress proxy
# accepts connections to any address.
REDIS_PROBE = r"""
import socket, sys
try:
    with socket.create_connection((sys.argv[1], 6379), timeout=3) as sock:
        sock.sendall(b"PING\r\n")
        reply = sock.recv(100)
except OSError as error:
    reply = repr(error).encode()
print(reply)
sys.exit(0 if reply.startswith((b"+PONG", b"-NOAUTH")) else 1)
"""

# Runs in a container: AUTHENTICATE to tor's control port with the cookie at argv[1], if this
# container can read one there; prints tor's reply, exit 0 only if tor accepted.
CONTROL = r"""
import pathlib, socket, sys
try:
    secret = pathlib.Path(sys.argv[1]).read_bytes().hex()
except OSError:
    secret = ""
with socket.create_connection(("tor", 9051), timeout=5) as sock:
    sock.sendall(f"AUTHENTICATE {secret}\r\n".encode())
    reply = sock.recv(200).decode().strip()
print(reply)
sys.exit(0 if reply.startswith("250") else 1)
"""

# Runs in a container on the redis network: what an attacker with the Redis password could
# queue for the guardian. Each job, if it ran, would leave a file in the guardian's /tmp.
# Prints "id=status" per job once the guardian has taken them all.
ATTACK = r"""
import subprocess, time
from rq import Queue
from rq.serializers import JSONSerializer
from onionpost import events, settings

class Payload:
    def __reduce__(self):
        return subprocess.check_call, (["sh", "-c", "id > /tmp/payload-ran"],)

connection = events.connect(settings.load_settings().redis_url)
pickled = Queue("events", connection=connection)
as_json = Queue("events", connection=connection, serializer=JSONSerializer)
jobs = [pickled.enqueue("subprocess.check_call", ["sh", "-c", "id > /tmp/foreign-ran"]),
        as_json.enqueue("subprocess.check_call", ["sh", "-c", "id > /tmp/json-ran"]),
        pickled.enqueue("onionpost.guardian.jobs.sweep", Payload())]
for _ in range(120):
    if all(job.get_status(refresh=True) in ("failed", "finished") for job in jobs):
        break
    time.sleep(0.5)
print(" ".join(f"{job.id}={job.get_status(refresh=True).value}" for job in jobs))
"""

# Runs in a container on the redis network: one JSON job on a queue nobody works; its id.
QUEUE_FOR_DASHBOARD = r"""
from onionpost import events, settings
connection = events.connect(settings.load_settings().redis_url)
print(events.queue("dashboard-test", connection).enqueue("onionpost.guardian.jobs.sweep").id)
"""


def address_on(stack: Stack, service: str, network: str) -> str:
    [container] = containers_of(stack, service)
    return str(container["NetworkSettings"]["Networks"][f"{stack.project}_{network}"]
               ["IPAddress"])


def redis_answers(stack: Stack, service: str, host: str) -> bool:
    """Whether Redis answers at host:6379 from inside the service's container (its network
    namespace), asked by a Python image: tor's own image has no client to try with."""
    [container] = containers_of(stack, service)
    result = run(["docker", "run", "--rm", "--network", f"container:{container['Id']}",
                  "python:3.11-slim-bookworm", "python", "-c", REDIS_PROBE, host], check=False)
    return result.returncode == 0


def dashboard_status(stack: Stack, user: str | None = None, password: str = "") -> int:
    url = f"http://127.0.0.1:{stack.dashboard_port}/"
    headers = {}
    if user is not None:
        login = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {login}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def generated_secrets(stack: Stack) -> dict[str, str]:
    """`cli secrets`: {"rq-dashboard": password, "redis": password}."""
    out = stack.compose("run", "--rm", "--no-deps", "-T", "cli", "secrets").stdout
    return {line.split()[0]: line.split()[-1] for line in out.splitlines()}


def test_redis_refuses_a_client_without_the_secret(stack: Stack) -> None:
    out = stack.run_python(REDIS_AUTH).stdout.splitlines()
    assert out == ["without: refused AuthenticationError", "with: PONG"]


def test_only_our_services_share_a_network_with_redis(stack: Stack) -> None:
    redis_address = address_on(stack, "redis", "redis")
    assert redis_answers(stack, "guardian", redis_address)  # the control
    # tor and ntfy have ways out (in this test ntfy's egress is a real one): not to Redis.
    assert not redis_answers(stack, "tor", redis_address)
    assert not redis_answers(stack, "ntfy", redis_address)


def test_ingest_cannot_authenticate_to_tors_control_port(stack: Stack) -> None:
    cookie = "/run/onionpost-tor-control/control_auth_cookie"
    assert stack.run_python(CONTROL, cookie, check=False).returncode == 0  # cli: allowed
    for place in (cookie, "/run/onionpost-tor/control_auth_cookie"):
        refused = stack.python("ingest", CONTROL, place, check=False)
        assert refused.returncode == 1 and refused.stdout.startswith("515"), refused.stdout
    listing = stack.compose("exec", "-T", "ingest", "ls", "-A", "/run/onionpost-tor").stdout
    assert listing.split() == ["hostname"]


def test_guardian_runs_no_foreign_job_and_no_pickle_payload(stack: Stack) -> None:
    outcome = dict(item.split("=") for item in stack.run_python(ATTACK).stdout.split())
    assert list(outcome.values()) == ["failed"] * 3, outcome
    leftovers = stack.compose("exec", "-T", "guardian", "ls", "-A", "/tmp").stdout.split()
    assert not {"foreign-ran", "json-ran", "payload-ran"} & set(leftovers), leftovers
    logs = stack.compose("logs", "--no-log-prefix", "guardian").stdout
    refused = [line for line in logs.splitlines() if "event=job_refused" in line]
    for job_id in outcome:
        assert sum(f"job={job_id}" in line for line in refused) == 1, refused


def test_dashboard_asks_for_the_generated_password_and_lists_json_jobs(stack: Stack) -> None:
    password = generated_secrets(stack)["rq-dashboard"]
    assert dashboard_status(stack) == 401
    assert dashboard_status(stack, "owner", "wrong") == 401
    assert dashboard_status(stack, "owner", password) == 200
    job_id = stack.run_python(QUEUE_FOR_DASHBOARD).stdout.strip()
    url = (f"http://127.0.0.1:{stack.dashboard_port}/0/data/jobs/dashboard-test/queued/"
           "10/asc/1.json")
    login = base64.b64encode(f"owner:{password}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {login}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        listed = json.load(response)
    assert [job["id"] for job in listed["jobs"]] == [job_id]


def test_ntfy_credentials_reach_the_notifier_only_and_mail_only_who_needs_it(
        docker_engine: DockerEngine) -> None:
    """compose.yaml as compose reads it, with a token set as .env would set it."""
    token = f"tk_{secrets.token_hex(6)}"
    config = json.loads(Stack(ONIONPOST_NTFY_TOKEN=token).compose(
        "--profile", "tools", "config", "--format", "json").stdout)
    services = config["services"]
    holders = {name for name, service in services.items()
               if token in json.dumps(service.get("environment") or {})}
    assert holders == {"notifier"}
    mail = {name: bool(volume.get("read_only")) for name, service in services.items()
            for volume in service.get("volumes") or [] if volume.get("source") == "mail"}
    assert mail == {"ingest": False, "cli": False, "guardian": True, "watch": True,
                    "owner": False}
    cookie = {name for name, service in services.items()
              for volume in service.get("volumes") or [] if volume.get("source") == "tor-control"}
    assert cookie == {"tor", "cli", "watch"}
