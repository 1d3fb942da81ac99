"""`onionpost status` against the real test network and a real redis-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from rq import SimpleWorker

from onionpost import maildir
from onionpost.events import NOTIFY_QUEUE, PAUSED_KEY, SERIALIZER, queue
from tests.e2e.conftest import MailOnion
from tests.e2e.tornet import TorNetwork
from tests.support.events import queued_events
from tests.support.net import wait_for
from tests.support.servers import IngestProcess

pytestmark = pytest.mark.e2e


def status(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "onionpost", "status", *args],
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60)


def store(mailbox: Path, sizes: list[int]) -> None:
    maildir.ensure(mailbox)
    for size in sizes:
        name = maildir.file_name(maildir.new_queue_id(), size)
        maildir.publish(mailbox, maildir.write_tmp(mailbox, name, [b"x" * size]))


@pytest.fixture
def status_env(mail_onion: MailOnion, redis_url: str, tmp_path: Path) -> dict[str, str]:
    mailbox = tmp_path / "inbox"  # also the Maildir of a test's onion_ingest
    store(mailbox, [1000, 2000, 3000])
    service = mail_onion.service
    return {"ONIONPOST_TOR_CONTROL": f"127.0.0.1:{service.control_port}",
            "ONIONPOST_TOR_COOKIE_FILE": str(service.cookie_file),
            "ONIONPOST_ONION_HOSTNAME_FILE": str(service.hs_dir / "hostname"),
            "ONIONPOST_DOMAIN": "", "ONIONPOST_REDIS_URL": redis_url,
            "ONIONPOST_MAILDIR": str(mailbox), "ONIONPOST_MAX_MESSAGES": "10",
            "ONIONPOST_MAX_BYTES": "100KB", "ONIONPOST_INGEST_LISTEN": "127.0.0.1:1"}


def test_status_json_tells_the_whole_state(status_env: dict[str, str], redis_url: str,
                                           mail_onion: MailOnion) -> None:
    client = redis.Redis.from_url(redis_url)
    client.hset(PAUSED_KEY, mapping={"reason": "messages", "by": "guardian",
                                     "since": f"{time.time():.3f}"})
    result = status(status_env, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["onion"] == mail_onion.address
    assert report["tor"]["reachable"] is True
    assert report["tor"]["bootstrap"] == 100
    assert report["tor"]["descriptor"] == "published"
    assert report["tor"]["pow"]["enabled"] is True
    assert report["ingest"]["state"] == "paused"
    assert (report["ingest"]["reason"], report["ingest"]["by"]) == ("messages", "guardian")
    assert report["mailbox"] == {"messages": 3, "bytes": 6000, "max_messages": 10,
                                 "max_bytes": 100_000}
    assert (report["queues"]["events"], report["queues"]["failed"]) == (0, 0)
    assert report["redis"]["reachable"] is True


def test_status_screen_follows_real_mail_and_jobs(
        status_env: dict[str, str], mail_onion: MailOnion, tor_network: TorNetwork,
        onion_ingest: Callable[..., IngestProcess], redis_url: str, tmp_path: Path) -> None:
    ingest = onion_ingest(maildir=tmp_path / "inbox")
    with tor_network.smtp(mail_onion.address, isolation="status") as client:
        client.sendmail("a@example.onion", [f"owner@{mail_onion.address}"],
                        b"Subject: s\r\n\r\n" + (b"x" * 60 + b"\r\n") * 40)
    connection = redis.Redis.from_url(redis_url)
    wait_for(lambda: len(queued_events(redis_url)) == 1, what="ingest's event")
    queue(NOTIFY_QUEUE, connection).enqueue("builtins.int", "not a number")
    worker = SimpleWorker([NOTIFY_QUEUE], connection=connection, serializer=SERIALIZER)
    worker.work(burst=True)  # fails the job

    result = status({**status_env, "ONIONPOST_INGEST_LISTEN": mail_onion.ingest_listen})

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["onion", mail_onion.address]
    assert "bootstrapped 100% (Done)" in lines[1]
    assert "descriptor published" in result.stdout
    assert "proof of work on" in result.stdout
    assert f"accepting mail; listening on {mail_onion.ingest_listen}" in result.stdout
    assert "4 of 10 messages" in result.stdout
    assert "events 1, notify 0, failed jobs 1" in result.stdout
    assert len(ingest.messages()) == 4


def test_address_command(mail_onion: MailOnion, tmp_path: Path) -> None:
    service = mail_onion.service
    found = subprocess.run(
        [sys.executable, "-m", "onionpost", "address"], capture_output=True, text=True,
        env={**os.environ, "ONIONPOST_DOMAIN": "",
             "ONIONPOST_ONION_HOSTNAME_FILE": str(service.hs_dir / "hostname")})
    assert (found.returncode, found.stdout) == (0, f"{mail_onion.address}\n")
    unknown = subprocess.run(
        [sys.executable, "-m", "onionpost", "address"], capture_output=True, text=True,
        env={**os.environ, "ONIONPOST_DOMAIN": "",
             "ONIONPOST_ONION_HOSTNAME_FILE": str(tmp_path / "missing"),
             "ONIONPOST_TOR_CONTROL": f"127.0.0.1:{service.control_port}",
             "ONIONPOST_TOR_COOKIE_FILE": str(service.cookie_file)})
    assert unknown.returncode == 69  # tor hosts the mail onion from a torrc, not ADD_ONION
    assert "unknown" in unknown.stderr
    assert unknown.stdout == ""


def test_status_degrades_when_tor_and_redis_are_unreachable(
        status_env: dict[str, str]) -> None:
    env = {**status_env, "ONIONPOST_TOR_CONTROL": "127.0.0.1:1",
           "ONIONPOST_REDIS_URL": "redis://:secret@127.0.0.1:1/0"}
    result = status(env)
    assert result.returncode == 69
    assert "tor       unreachable: cannot connect to tor's ControlPort 127.0.0.1:1" in result.stdout
    assert "Redis unreachable at 127.0.0.1:1/0" in result.stdout
    assert "3 of 10 messages" in result.stdout  # the disk is still read
    assert "secret" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(status(env, "--json").stdout)
    assert report["tor"]["reachable"] is False
    assert report["redis"]["reachable"] is False
