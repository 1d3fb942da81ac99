"""The outbox against real ingest processes: sendmail --queue keeps what it could not
deliver, `send-queue` delivers it once, bounces refusals and expired mail into the local
Maildir. As in test_sendmail_delivery.py only the Tor hop is left out: the connector opens
a real TCP connection to the ingest serving each onion domain. Time is moved with the
`clock` argument of send-queue, never waited for."""

from __future__ import annotations

import email
import email.policy
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.direct_network import Network
from tests.support.net import free_port
from tests.support.servers import IngestProcess

from onionpost import onion
from onionpost.exits import CommandError
from onionpost.sender import invocation, message, queue_command, sendmail
from onionpost.sender.delivery import Connector
from onionpost.sender.outbox import Outbox
from onionpost.settings import Settings


def new_onion() -> str:
    return onion.from_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())


OURS, ALICE, CAROL = new_onion(), new_onion(), new_onion()
MESSAGE = (f"From: Me <me@{OURS}>\nTo: alice@{ALICE}, carol@{CAROL}\nSubject: plans\n\n"
           f"the body stays private\n").encode()
LATER = 3600.0  # past the first backoff (5 min), well within the lifetime


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(domain=OURS, send_retry_delays="0.1,0.1", outbox=tmp_path / "outbox",
                    local_inbox=tmp_path / "me" / "inbox")


@pytest.fixture
def alice(start_ingest: Callable[..., IngestProcess], tmp_path: Path) -> IngestProcess:
    return start_ingest(maildir=tmp_path / "alice" / "inbox", domain=ALICE)


def sendmail_run(network: Network, argv: list[str], settings: Settings) -> tuple[int, str]:
    err = io.StringIO()
    call = invocation.parse(argv)
    raw = message.read(io.BytesIO(MESSAGE), call.dots_end_message)
    code = sendmail.send(call, raw, settings, lambda _: None, network.connector(), err=err,
                         out=io.StringIO(), sleep=lambda _: None)
    return code, err.getvalue()


def send_queue(network: Network, settings: Settings, later: float = LATER,
               connector: Connector | None = None) -> tuple[int, str]:
    try:
        code = queue_command.run(Outbox(settings.outbox), settings,
                                 connector or network.connector(),
                                 clock=lambda: time.time() + later)
    except CommandError as error:
        return error.code, error.message
    return code, ""


def bounces(settings: Settings) -> list[email.message.EmailMessage]:
    new = settings.local_inbox / "new"
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted(new.iterdir())] if new.is_dir() else []


def test_down_means_queued_exit_0_then_delivered_once(
        start_ingest: Callable[..., IngestProcess], settings: Settings, tmp_path: Path) -> None:
    network = Network({CAROL: free_port()})  # nothing listens there
    code, err = sendmail_run(network, ["-i", "--queue", f"carol@{CAROL}"], settings)
    assert code == 0, err
    [line] = err.splitlines()
    assert line.startswith(f"onionpost-sendmail: queued for {CAROL}: connection to the onion")
    assert line.endswith("; next try in 5 min")
    assert network.connections[CAROL] == 1  # one try: the retries are send-queue's
    [entry] = Outbox(settings.outbox).entries()
    assert entry.recipients == {CAROL: [f"carol@{CAROL}"]} and entry.sender == f"me@{OURS}"
    assert b"the body stays private" in Outbox(settings.outbox).message(entry.id)

    assert send_queue(network, settings, later=0) == (0, "")  # not due yet: not tried
    assert network.connections[CAROL] == 1

    carol = start_ingest(maildir=tmp_path / "carol" / "inbox", domain=CAROL)
    network.ports[CAROL] = carol.port
    assert send_queue(network, settings) == (0, "")
    [stored] = carol.messages()
    assert b"the body stays private" in stored.read_bytes()
    assert Outbox(settings.outbox).entries() == []
    assert list((settings.outbox / "new").iterdir()) == []
    assert send_queue(network, settings, later=10 * LATER) == (0, "")
    assert len(carol.messages()) == 1 and bounces(settings) == []


def test_the_setting_turns_the_queue_on(settings: Settings) -> None:
    network = Network({CAROL: free_port()})
    on = settings.model_copy(update={"send_queue": "on"})
    code, err = sendmail_run(network, ["-i", f"carol@{CAROL}"], on)
    assert code == 0, err
    assert len(Outbox(settings.outbox).entries()) == 1


def test_partial_success_retries_only_the_domain_that_was_down(
        start_ingest: Callable[..., IngestProcess], alice: IngestProcess, settings: Settings,
        tmp_path: Path) -> None:
    network = Network({ALICE: alice.port, CAROL: free_port()})
    code, err = sendmail_run(network, ["-i", "-t", "--queue"], settings)
    assert code == 0, err
    assert len(alice.messages()) == 1  # not held back by carol
    [entry] = Outbox(settings.outbox).entries()
    assert entry.recipients == {CAROL: [f"carol@{CAROL}"]}

    carol = start_ingest(maildir=tmp_path / "carol" / "inbox", domain=CAROL)
    network.ports[CAROL] = carol.port
    assert send_queue(network, settings) == (0, "")
    assert len(carol.messages()) == 1
    assert len(alice.messages()) == 1
    assert network.connections[ALICE] == 1


def test_a_refusal_on_retry_bounces_into_the_local_inbox(
        alice: IngestProcess, settings: Settings) -> None:
    network = Network({CAROL: free_port()})
    assert sendmail_run(network, ["-i", "--queue", f"carol@{CAROL}"], settings)[0] == 0
    network.ports[CAROL] = alice.port  # alice's server does not serve carol: 550 at RCPT
    assert send_queue(network, settings) == (0, "")
    assert Outbox(settings.outbox).entries() == []
    [bounce] = bounces(settings)
    assert bounce["To"] == f"me@{OURS}" and bounce["Subject"] == "Undelivered: plans"
    text, headers = list(bounce.iter_parts())
    assert f"carol@{CAROL}: 550 5.7.1 Relaying denied" in text.get_content()
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Subject: plans" in headers.get_content()
    assert alice.messages() == []


def test_a_refusal_at_send_time_is_final_not_queued(alice: IngestProcess,
                                                    settings: Settings) -> None:
    network = Network({ALICE: alice.port, CAROL: alice.port})
    code, err = sendmail_run(network, ["-i", "--queue", f"carol@{CAROL}"], settings)
    assert code == 67
    assert "Relaying denied" in err
    assert Outbox(settings.outbox).entries() == []


def test_expired_mail_is_bounced_without_another_try(settings: Settings) -> None:
    network = Network({CAROL: free_port()})
    assert sendmail_run(network, ["-i", "--queue", f"carol@{CAROL}"], settings)[0] == 0
    tries = network.connections[CAROL]
    assert send_queue(network, settings, later=settings.queue_lifetime + 1) == (0, "")
    assert network.connections[CAROL] == tries
    assert Outbox(settings.outbox).entries() == []
    [bounce] = bounces(settings)
    text = next(bounce.iter_parts()).get_content()
    assert "queue lifetime" in text
    assert f"carol@{CAROL}: connection to the onion service failed" in text


def test_a_failed_retry_backs_off(settings: Settings) -> None:
    network = Network({CAROL: free_port()})
    assert sendmail_run(network, ["-i", "--queue", f"carol@{CAROL}"], settings)[0] == 0
    assert send_queue(network, settings) == (0, "")
    [entry] = Outbox(settings.outbox).entries()
    assert entry.attempts == 2
    assert entry.next_attempt > time.time() + LATER + 500  # 10 minutes after that run
    assert bounces(settings) == []


def test_two_runs_at_once_deliver_once(start_ingest: Callable[..., IngestProcess],
                                       settings: Settings, tmp_path: Path) -> None:
    network = Network({CAROL: free_port()})
    assert sendmail_run(network, ["-i", "--queue", f"carol@{CAROL}"], settings)[0] == 0
    carol = start_ingest(maildir=tmp_path / "carol" / "inbox", domain=CAROL)
    network.ports[CAROL] = carol.port
    entered, release = threading.Event(), threading.Event()
    plain = network.connector()

    def held_up(host: str, port: int, timeout: float) -> socket.socket:
        """The first run holds the lock and waits here until the second has finished."""
        entered.set()
        release.wait(30)
        return plain(host, port, timeout)

    first: list[tuple[int, str]] = []
    runner = threading.Thread(target=lambda: first.append(
        send_queue(network, settings, connector=held_up)))
    runner.start()
    assert entered.wait(30)
    second = send_queue(network, settings)
    release.set()
    runner.join(30)
    assert second[0] == 75 and "another run" in second[1]
    assert first == [(0, "")]
    assert len(carol.messages()) == 1
    assert network.connections[CAROL] == 1 + 1
    assert Outbox(settings.outbox).entries() == []


def test_list_shows_the_queue_without_bodies(settings: Settings, tmp_path: Path) -> None:
    network = Network({CAROL: free_port()})
    assert sendmail_run(network, ["-i", "--queue", f"carol@{CAROL}"], settings)[0] == 0
    [entry] = Outbox(settings.outbox).entries()
    result = subprocess.run(
        [sys.executable, "-m", "onionpost", "send-queue", "--list"], capture_output=True,
        text=True, timeout=30,
        env={**os.environ, "ONIONPOST_OUTBOX": str(settings.outbox)})
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.startswith(f"{entry.id}  age ") and "attempts 1  next try in " in first
    assert second.startswith(f"  {CAROL} (1 recipient): connection to the onion service")
    assert "private" not in result.stdout


def test_a_bad_argument_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "onionpost", "send-queue", "--now"], capture_output=True,
        text=True, timeout=30, env={**os.environ, "ONIONPOST_OUTBOX": str(tmp_path / "o")})
    assert result.returncode == 64
    assert "unrecognized arguments: --now" in result.stderr
