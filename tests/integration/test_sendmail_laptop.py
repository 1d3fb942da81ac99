"""The laptop's sends as its mail clients make them, with the installed commands: `mail -s`
and cron mail without a From header (ONIONPOST_FROM), tor not running (one line, no retry),
and the outbox that neomutt-config turns on, delivered later by `onionpost send-queue`. The
receiver is a real ingest process; tor's SOCKS port is a relay speaking SOCKS5 to it
(tests/support/slow_relay.py, no delay), or a closed port when tor is "not running"."""

from __future__ import annotations

import email
import email.policy
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.net import free_port, wait_for
from tests.support.servers import IngestProcess
from tests.support.slow_relay import SlowRelay

from onionpost import maildir, onion

BIN = Path(sys.executable).parent
SENDMAIL, ONIONPOST = BIN / "onionpost-sendmail", BIN / "onionpost"
NO_FROM = b"To: someone\nSubject: backup done\n\nthe nightly backup finished\n"

# Counts the real command's TCP connections (their ports), one line each: Python runs
# sitecustomize from PYTHONPATH at start, before onionpost is imported.
CONNECTION_COUNTER = """\
import os, socket
_connect = socket.socket.connect
def _counted(self, address):
    with open(os.environ["CONNECTIONS_LOG"], "a") as log:
        log.write(f"{address[1]}\\n")
    return _connect(self, address)
socket.socket.connect = _counted
"""


def new_onion() -> str:
    return onion.from_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())


OURS, ALICE, CAROL = new_onion(), new_onion(), new_onion()


@pytest.fixture
def alice(start_ingest: Callable[..., IngestProcess], tmp_path: Path) -> IngestProcess:
    return start_ingest(maildir=tmp_path / "alice" / "inbox", domain=ALICE)


@pytest.fixture
def laptop(tmp_path: Path) -> dict[str, str]:
    """The environment of a laptop's mail client: its own HOME, our onion, the counter."""
    counter = tmp_path / "counter"
    counter.mkdir()
    (counter / "sitecustomize.py").write_text(CONNECTION_COUNTER)
    home = tmp_path / "home"
    home.mkdir()
    return {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(home), "ONIONPOST_DOMAIN": OURS,
            "ONIONPOST_SEND_RETRY_DELAYS": "0.1,0.1", "PYTHONPATH": str(counter),
            "CONNECTIONS_LOG": str(tmp_path / "connections"), "TERM": "dumb"}


def connections_to(env: dict[str, str], port: int) -> int:
    log = Path(env["CONNECTIONS_LOG"])
    return log.read_text().split().count(str(port)) if log.exists() else 0


def run(command: list[str | Path], env: dict[str, str], stdin: bytes = NO_FROM,
        **more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in command], input=stdin.decode(),
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**env, **more})


def stored(ingest: IngestProcess) -> email.message.EmailMessage:
    [path] = ingest.messages()
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


@pytest.mark.parametrize(("identity", "expected"), [
    ({}, f"anon@{OURS}"),                                   # what neomutt-config writes
    ({"ONIONPOST_FROM": f"backup@{OURS}"}, f"backup@{OURS}"),
    ({"ONIONPOST_FROM": "backup"}, f"backup@{OURS}"),       # a bare name gets our onion
])
def test_a_message_without_from_leaves_as_the_laptop(
        identity: dict[str, str], expected: str, alice: IngestProcess,
        laptop: dict[str, str]) -> None:
    with SlowRelay(0.0, {ALICE: alice.port}) as relay:
        result = run([SENDMAIL, "-oi", f"bob@{ALICE}"], laptop,
                     ONIONPOST_TOR_SOCKS=f"127.0.0.1:{relay.port}", **identity)  # type: ignore[arg-type]  # variables, never stdin
    assert result.returncode == 0, result.stderr
    message = stored(alice)
    assert message["From"] == expected
    assert message["Return-Path"] == f"<{expected}>"  # the envelope sender follows it
    assert message["Subject"] == "backup done"


@pytest.mark.skipif(shutil.which("bsd-mailx") is None,
                    reason="bsd-mailx is not installed (make system-deps)")
def test_mail_s_sends_through_onionpost_sendmail(alice: IngestProcess, laptop: dict[str, str],
                                                 tmp_path: Path) -> None:
    """bsd-mailx writes To and Subject, no From: ONIONPOST_FROM's default fills it."""
    mailrc = tmp_path / "mailrc"
    mailrc.write_text(f"set sendmail={SENDMAIL}\n")
    with SlowRelay(0.0, {ALICE: alice.port}) as relay:
        result = run(["bsd-mailx", "-s", "from cron", f"bob@{ALICE}"], laptop,
                     stdin=b"disk 93% full\n", MAILRC=str(mailrc),
                     ONIONPOST_TOR_SOCKS=f"127.0.0.1:{relay.port}")
        assert result.returncode == 0, result.stderr
        wait_for(alice.messages, timeout=60, what="the message from mail -s")  # mailx forks
    message = stored(alice)
    assert message["From"] == f"anon@{OURS}"
    assert message["Subject"] == "from cron"
    assert "disk 93% full" in message.get_content()


def test_tor_not_running_is_one_line_and_no_retry(laptop: dict[str, str]) -> None:
    socks = free_port()  # nothing listens: connection refused, as when tor is stopped
    result = run([SENDMAIL, "-oi", f"bob@{ALICE}", f"dan@{CAROL}"], laptop,
                 stdin=f"From: me@{OURS}\nSubject: hi\n\nbody\n".encode(),
                 ONIONPOST_TOR_SOCKS=f"127.0.0.1:{socks}")
    assert result.returncode == 75
    [line] = result.stderr.splitlines()
    assert line.startswith(f"onionpost-sendmail: tor is not running at 127.0.0.1:{socks}")
    assert "not sent to 2 recipients" in line
    assert connections_to(laptop, socks) == 2  # one try per destination, no retries


def test_with_the_outbox_tor_not_running_queues_and_send_queue_delivers_later(
        alice: IngestProcess, laptop: dict[str, str]) -> None:
    socks = free_port()
    result = run([SENDMAIL, "-oi", "--queue", f"bob@{ALICE}"], laptop,
                 stdin=f"From: me@{OURS}\nSubject: later\n\nqueued body\n".encode(),
                 ONIONPOST_TOR_SOCKS=f"127.0.0.1:{socks}")
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert f"queued for {ALICE}: tor is not running at 127.0.0.1:{socks}" in line
    assert connections_to(laptop, socks) == 1
    listing = run([ONIONPOST, "send-queue", "--list"], laptop, stdin=b"")
    assert f"{ALICE} (1 recipient): tor is not running" in listing.stdout

    with SlowRelay(0.0, {ALICE: alice.port}) as relay:  # tor is back
        delivered = run([ONIONPOST, "send-queue", "--flush"], laptop, stdin=b"",
                        ONIONPOST_TOR_SOCKS=f"127.0.0.1:{relay.port}")
    assert delivered.returncode == 0, delivered.stderr
    assert stored(alice)["Subject"] == "later"
    assert "the outbox is empty" in run([ONIONPOST, "send-queue", "--list"], laptop,
                                        stdin=b"").stdout


def test_with_the_outbox_a_down_onion_gets_one_try_here(laptop: dict[str, str]) -> None:
    """Tor runs but the destination does not answer: one try, queued; the retries are
    send-queue's (the relay refuses the onion it does not know, as tor says 0xF0)."""
    with SlowRelay(0.0, {}) as relay:
        result = run([SENDMAIL, "-oi", f"bob@{ALICE}"], laptop,
                     stdin=f"From: me@{OURS}\nSubject: x\n\nbody\n".encode(),
                     ONIONPOST_TOR_SOCKS=f"127.0.0.1:{relay.port}", ONIONPOST_SEND_QUEUE="on")
    assert result.returncode == 0, result.stderr
    assert f"queued for {ALICE}" in result.stderr
    assert connections_to(laptop, relay.port) == 1  # not 3: the retry delays are not used


@pytest.mark.skipif(shutil.which("neomutt") is None,
                    reason="neomutt is not installed (make system-deps)")
def test_neomutt_with_its_generated_config_never_waits_for_tor(
        alice: IngestProcess, laptop: dict[str, str]) -> None:
    """neomutt (batch mode) with `onionpost neomutt-config`'s file, tor stopped: the send
    returns after one connection attempt, the mail waits in the outbox, send-queue sends it."""
    home = Path(laptop["HOME"])
    for box in ("inbox", "sent", "drafts", "trash"):
        maildir.ensure(home / "mail" / box)
    socks = free_port()
    env = {**laptop, "ONIONPOST_TOR_SOCKS": f"127.0.0.1:{socks}"}
    config = home / "neomutt.config"
    generated = run([ONIONPOST, "neomutt-config"], env, stdin=b"")
    assert generated.returncode == 0, generated.stderr
    config.write_text(generated.stdout)
    result = subprocess.run(["neomutt", "-n", "-F", str(config), "-s", "from neomutt", "--",
                             f"bob@{ALICE}"], input="written in neomutt\n", text=True,
                            capture_output=True, timeout=120, check=False, cwd=home, env=env)
    assert result.returncode == 0, result.stderr
    assert connections_to(laptop, socks) == 1
    with SlowRelay(0.0, {ALICE: alice.port}) as relay:
        delivered = run([ONIONPOST, "send-queue", "--flush"], laptop, stdin=b"",
                        ONIONPOST_TOR_SOCKS=f"127.0.0.1:{relay.port}")
    assert delivered.returncode == 0, delivered.stderr
    message = stored(alice)
    assert message["Subject"] == "from neomutt"
    assert message["From"] == f"anon <anon@{OURS}>"


def _screen(server: str) -> str:
    return subprocess.run(["tmux", "-L", server, "capture-pane", "-p", "-t", "laptop"],
                          capture_output=True, text=True, check=False).stdout


def _keys(server: str, *keys: str) -> None:
    subprocess.run(["tmux", "-L", server, "send-keys", "-t", "laptop", *keys], check=True)


@pytest.mark.skipif(shutil.which("neomutt") is None or shutil.which("tmux") is None,
                    reason="neomutt or tmux is not installed (make system-deps)")
def test_an_interactive_neomutt_send_returns_at_once_with_tor_stopped(
        alice: IngestProcess, laptop: dict[str, str], tmp_path: Path) -> None:
    """As the owner types it, in tmux: m, To, Subject, the editor, y. With tor stopped the
    compose screen closes after one connection attempt and the mail is in the outbox."""
    home = Path(laptop["HOME"])
    for box in ("inbox", "sent", "drafts", "trash"):
        maildir.ensure(home / "mail" / box)
    socks = free_port()
    env = {**laptop, "ONIONPOST_TOR_SOCKS": f"127.0.0.1:{socks}", "TERM": "xterm"}
    editor = tmp_path / "editor"  # the owner's editor, writing the body without a screen
    editor.write_text('#!/bin/sh\necho "typed in neomutt" >> "$1"\n')
    editor.chmod(0o755)
    config = home / "neomutt.config"
    config.write_text(run([ONIONPOST, "neomutt-config"], env, stdin=b"").stdout
                      + f'set editor = "{editor}"\n')
    server = f"laptop-{uuid.uuid4().hex[:8]}"
    subprocess.run(["tmux", "-L", server, "new-session", "-d", "-s", "laptop", "-x", "120",
                    "-y", "30", f"neomutt -F {config}"], env=env, check=True)
    try:
        wait_for(lambda: "inbox" in _screen(server), what="neomutt's index")
        _keys(server, "m")
        wait_for(lambda: "To:" in _screen(server), what="the To prompt")
        _keys(server, f"bob@{ALICE}", "Enter")
        wait_for(lambda: "Subject:" in _screen(server), what="the Subject prompt")
        _keys(server, "from tmux", "Enter")
        wait_for(lambda: "y:Send" in _screen(server), what="the compose screen")
        _keys(server, "y")
        wait_for(lambda: "Mail sent" in _screen(server), timeout=60, what="Mail sent")
    finally:
        subprocess.run(["tmux", "-L", server, "kill-server"], check=False)
    assert connections_to(laptop, socks) == 1  # one try, no retry delays in the foreground
    with SlowRelay(0.0, {ALICE: alice.port}) as relay:
        delivered = run([ONIONPOST, "send-queue", "--flush"], laptop, stdin=b"",
                        ONIONPOST_TOR_SOCKS=f"127.0.0.1:{relay.port}")
    assert delivered.returncode == 0, delivered.stderr
    message = stored(alice)
    assert message["Subject"] == "from tmux"
    assert "typed in neomutt" in message.get_content()
