"""sendmail's delivery against real ingest processes. Only the Tor hop is left out: the
connector opens a real TCP connection to the ingest that serves each onion domain (the e2e
suite runs the same code over the private Tor network)."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.direct_network import Network
from tests.support.net import free_port, wait_for
from tests.support.privacy import names_of_this_machine
from tests.support.servers import IngestProcess

from onionpost import onion
from onionpost.events import PAUSED_KEY
from onionpost.sender import invocation, message, sendmail
from onionpost.settings import Settings


def new_onion() -> str:
    return onion.from_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())


OURS, ALICE, BOB, CAROL = new_onion(), new_onion(), new_onion(), new_onion()
NEOMUTT_MESSAGE = (f"Date: Wed, 25 Nov 2026 14:30:00 +0100\n"
                   f"From: Me <me@{OURS}>\n"
                   f"To: alice@{ALICE}, bob@{BOB}\n"
                   f"Bcc: secret@{BOB}\n"
                   f"Subject: hello\n"
                   f"User-Agent: NeoMutt/20220429\n"
                   f"\n"
                   f"first line\n"
                   f".\n"
                   f"after a lone dot\n").encode()


class Run:
    def __init__(self, code: int, out: str, err: str, sleeps: list[float]) -> None:
        self.code, self.out, self.err, self.sleeps = code, out, err, sleeps


def send(network: Network, argv: list[str], raw: bytes = NEOMUTT_MESSAGE,
         book: dict[str, str] | None = None, **settings: Any) -> Run:
    out, err = io.StringIO(), io.StringIO()
    sleeps: list[float] = []
    config = Settings(**{"domain": OURS, "send_retry_delays": "0.2,0.3", **settings})
    call = invocation.parse(argv)
    raw = message.read(io.BytesIO(raw), call.dots_end_message)
    code = sendmail.send(call, raw, config, (book or {}).get, network.connector(), err=err, out=out,
                         sleep=sleeps.append)
    return Run(code, out.getvalue(), err.getvalue(), [delay for delay in sleeps if delay])


@pytest.fixture
def receivers(start_ingest: Callable[..., IngestProcess],
              tmp_path: Path) -> dict[str, IngestProcess]:
    return {domain: start_ingest(maildir=tmp_path / name / "inbox", domain=domain)
            for name, domain in [("alice", ALICE), ("bob", BOB)]}


def network_of(receivers: dict[str, IngestProcess], **extra: int) -> Network:
    return Network({**{d: ingest.port for d, ingest in receivers.items()}, **extra})


def stored(ingest: IngestProcess) -> list[bytes]:
    return [path.read_bytes() for path in ingest.messages()]


def test_one_session_per_domain_reaches_every_maildir(
        receivers: dict[str, IngestProcess]) -> None:
    network = network_of(receivers)
    run = send(network, ["-oi", "-t", "-v"])
    assert run.code == 0, run.err
    assert run.err == ""
    assert sorted(run.out.splitlines()) == sorted(
        f"{a}: sent (250 2.0.0 OK queued as {q})" for a, q in [
            (f"alice@{ALICE}", _queue_id(receivers[ALICE])),
            (f"bob@{BOB}", _queue_id(receivers[BOB])),
            (f"secret@{BOB}", _queue_id(receivers[BOB]))])
    assert network.connections == {ALICE: 1, BOB: 1}
    for ingest in receivers.values():
        [message] = stored(ingest)  # bob and secret: one transaction, one stored copy
        assert b"\r\n.\r\nafter a lone dot\r\n" in message
        assert b"with ESMTP id" in message  # STARTTLS offered, not used: off by default


def test_outgoing_headers_are_clean(receivers: dict[str, IngestProcess]) -> None:
    assert send(network_of(receivers), ["-oi", "-t"]).code == 0
    [message] = stored(receivers[BOB])
    headers = message.split(b"\r\n\r\n", 1)[0].decode()
    assert "Bcc" not in headers and "secret@" not in headers
    assert "User-Agent" not in headers
    assert "Date: Wed, 25 Nov 2026 13:30:00 +0000" in headers
    assert f"@{OURS}>" in headers.split("Message-ID: ", 1)[1].splitlines()[0]
    assert not names_of_this_machine(headers)


def test_address_book_names_as_recipients(receivers: dict[str, IngestProcess]) -> None:
    raw = b"From: me@" + OURS.encode() + b"\nTo: bob\nSubject: x\n\nbody\n"
    run = send(network_of(receivers), ["-t", "-i"], raw, book={"bob": f"bob@{BOB}"})
    assert run.code == 0, run.err
    [message] = stored(receivers[BOB])
    assert f"To: bob@{BOB}\r\n".encode() in message


def test_starttls_when_told(receivers: dict[str, IngestProcess]) -> None:
    assert send(network_of(receivers), ["-i", f"a@{ALICE}"], send_starttls="on").code == 0
    [message] = stored(receivers[ALICE])
    assert b"with ESMTPS id" in message


def test_a_destination_down_means_75_and_nothing_sent(
        receivers: dict[str, IngestProcess]) -> None:
    network = network_of(receivers, **{CAROL: free_port()})  # nothing listens there
    run = send(network, ["-i", f"alice@{ALICE}", f"carol@{CAROL}"])
    assert run.code == 75
    assert network.connections[CAROL] == 3
    assert run.sleeps == [0.2, 0.3]
    lines = run.err.splitlines()
    assert len(lines) == 2
    assert f"carol@{CAROL}: connection to the onion service failed" in lines[1]
    assert "gave up after 3 tries; try again later" in lines[1]
    assert f"alice@{ALICE}: not sent: another recipient failed" in lines[0]
    assert stored(receivers[ALICE]) == []


def test_partial_sends_to_the_reachable(receivers: dict[str, IngestProcess]) -> None:
    network = network_of(receivers, **{CAROL: free_port()})
    run = send(network, ["-i", "--partial", f"alice@{ALICE}", f"carol@{CAROL}"])
    assert run.code == 75
    assert len(stored(receivers[ALICE])) == 1
    assert run.err.count("\n") == 1 and f"carol@{CAROL}" in run.err


def test_a_refused_recipient_stops_everything(receivers: dict[str, IngestProcess]) -> None:
    # alice's server does not serve carol's domain: 550 5.7.1 at RCPT.
    network = network_of(receivers, **{CAROL: receivers[ALICE].port})
    run = send(network, ["-i", f"alice@{ALICE}", f"bob@{BOB}", f"carol@{CAROL}"])
    assert run.code == 67
    assert f"carol@{CAROL}: 550 5.7.1 Relaying denied" in run.err
    assert run.sleeps == []  # 5xx is final
    assert stored(receivers[ALICE]) == [] and stored(receivers[BOB]) == []


def test_a_non_onion_recipient_stops_everything_before_any_connection(
        receivers: dict[str, IngestProcess]) -> None:
    network = network_of(receivers)
    run = send(network, ["-i", f"alice@{ALICE}", "someone@example.org"])
    assert run.code == 67
    assert "someone@example.org: onionpost delivers only to .onion addresses" in run.err
    assert network.connections == {}
    assert stored(receivers[ALICE]) == []


def test_a_paused_receiver_is_retried(start_ingest: Callable[..., IngestProcess],
                                      redis_url: str, tmp_path: Path) -> None:
    ingest = start_ingest(maildir=tmp_path / "inbox", domain=ALICE)
    client = redis.Redis.from_url(redis_url)
    client.hset(PAUSED_KEY, mapping={"reason": "test", "since": "0"})
    wait_for(lambda: "event=paused" in ingest.logs(), what="ingest to pause")

    def resume(delay: float) -> None:
        if delay:
            client.delete(PAUSED_KEY)
            wait_for(lambda: "event=resumed" in ingest.logs(), what="ingest to resume")

    out, err = io.StringIO(), io.StringIO()
    code = sendmail.send(invocation.parse(["-i", f"a@{ALICE}"]), NEOMUTT_MESSAGE,
                         Settings(domain=OURS, send_retry_delays="0.1,0.1"), lambda _: None,
                         Network({ALICE: ingest.port}).connector(), err=err, out=out,
                         sleep=resume)
    assert code == 0, err.getvalue()
    assert len(ingest.messages()) == 1


def test_too_big_is_a_data_error(start_ingest: Callable[..., IngestProcess],
                                 tmp_path: Path) -> None:
    ingest = start_ingest(maildir=tmp_path / "inbox", domain=ALICE, max_message_size=2000)
    raw = NEOMUTT_MESSAGE + b"x" * 5000 + b"\n"
    run = send(Network({ALICE: ingest.port}), ["-i", f"a@{ALICE}"], raw)
    assert run.code == 65, run.err
    assert run.err.startswith(f"onionpost-sendmail: a@{ALICE}: 552")
    assert ingest.messages() == []


class Recorder:
    """A real aiosmtpd server that remembers what each session said and answers DATA with
    the scripted `replies` (then 250)."""

    def __init__(self, replies: tuple[str, ...] = ()) -> None:
        self.sessions: list[dict[str, object]] = []
        self.replies = list(replies)
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.sessions.append({"ehlo": session.host_name, "from": envelope.mail_from,
                                  "rcpts": list(envelope.rcpt_tos),
                                  "data": envelope.original_content})
            return self.replies.pop(0) if self.replies else "250 2.0.0 OK"


@pytest.fixture
def recorder() -> Iterator[Callable[..., tuple[Recorder, int]]]:
    controllers: list[Controller] = []

    def start(*replies: str) -> tuple[Recorder, int]:
        handler, port = Recorder(replies), free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port,
                                server_hostname="recorder.test")
        controller.start()
        controllers.append(controller)
        return handler, port

    yield start
    for controller in controllers:
        controller.stop()


def test_ehlo_names_our_onion_never_this_host(recorder: Callable[..., tuple[Recorder, int]],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    handler, port = recorder()
    monkeypatch.setattr(socket, "getfqdn", lambda *_: pytest.fail("getfqdn was called"))
    run = send(Network({ALICE: port}), ["-i", f"a@{ALICE}", f"b@{ALICE}"])
    assert run.code == 0, run.err
    [session] = handler.sessions
    assert session["ehlo"] == OURS
    assert session["from"] == f"me@{OURS}"
    assert session["rcpts"] == [f"a@{ALICE}", f"b@{ALICE}"]


def test_without_our_onion_ehlo_says_nothing_about_us(
        recorder: Callable[..., tuple[Recorder, int]], tmp_path: Path) -> None:
    handler, port = recorder()
    raw = b"From: someone@example.org\n\nbody\n"
    run = send(Network({ALICE: port}), ["-i", f"a@{ALICE}"], raw, domain="",
               onion_hostname_file=tmp_path / "missing")
    assert run.code == 0, run.err
    [session] = handler.sessions
    assert session["ehlo"] == "[127.0.0.1]"
    assert b"Message-ID: <" in session["data"]  # type: ignore[operator]  # DATA: bytes
    assert b"@example.org>" in session["data"]  # type: ignore[operator]  # DATA: bytes


def test_a_4xx_after_data_redoes_the_transaction(
        recorder: Callable[..., tuple[Recorder, int]]) -> None:
    handler, port = recorder("451 4.3.0 Try again")
    network = Network({ALICE: port})
    run = send(network, ["-i", f"a@{ALICE}"])
    assert run.code == 0, run.err
    assert run.sleeps == [0.2]
    assert network.connections[ALICE] == 2
    assert [session["rcpts"] for session in handler.sessions] == [[f"a@{ALICE}"]] * 2


def test_a_5xx_after_data_is_final(recorder: Callable[..., tuple[Recorder, int]]) -> None:
    handler, port = recorder("554 5.7.0 Not wanted")
    run = send(Network({ALICE: port}), ["-i", f"a@{ALICE}", f"b@{ALICE}"])
    assert run.code == 69
    assert run.sleeps == []
    assert run.err.splitlines() == [f"onionpost-sendmail: {r}@{ALICE}: 554 5.7.0 Not wanted"
                                    for r in "ab"]
    assert len(handler.sessions) == 1


def test_data_keeps_failing_means_75_after_three_tries(
        recorder: Callable[..., tuple[Recorder, int]]) -> None:
    handler, port = recorder(*["452 4.3.1 Full"] * 5)
    run = send(Network({ALICE: port}), ["-i", f"a@{ALICE}"])
    assert run.code == 75
    assert len(handler.sessions) == 3
    assert "452 4.3.1 Full (gave up after 3 tries" in run.err


def _queue_id(ingest: IngestProcess) -> str:
    [path] = ingest.messages()
    return path.name.split("R", 1)[1].split(".", 1)[0]
