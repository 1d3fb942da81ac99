"""Fetching a full mailbox lets mail in again: real ingest, real guardian, real sshd."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from pathlib import Path

import redis
from tests.conftest import TEST_DOMAIN
from tests.support.fetch_rig import FetchRig
from tests.support.guardian_rig import ServiceProcess
from tests.support.net import wait_for
from tests.support.servers import IngestProcess

from onionpost.events import PAUSED_KEY

LIMIT = 10


def _greeting(port: int) -> int:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10):
            return 220
    except smtplib.SMTPConnectError as error:
        return error.smtp_code


def _send(port: int, subject: str) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("someone@example.org", [f"owner@{TEST_DOMAIN}"],
                            f"Subject: {subject}\r\n\r\nhello\r\n".encode())
    except (smtplib.SMTPResponseException, smtplib.SMTPServerDisconnected):
        return False
    return True


def test_fetching_a_full_box_resumes_ingest(
        start_ingest: Callable[..., IngestProcess],
        start_service: Callable[..., ServiceProcess], mailbox: Path, redis_url: str,
        tmp_path: Path) -> None:
    start_service("guardian", max_messages=LIMIT, notify_new_mail="off")
    ingest = start_ingest(maildir=mailbox, max_messages=LIMIT, tls="off",
                          circuit_messages_per_minute=1000)
    assert all(_send(ingest.port, f"message {n}") for n in range(LIMIT))
    wait_for(lambda: _greeting(ingest.port) == 421, what="the guardian to pause ingest")
    assert redis.Redis.from_url(redis_url).exists(PAUSED_KEY)
    stored = {path.name: path.read_bytes() for path in ingest.messages()}
    assert len(stored) == LIMIT

    with FetchRig(tmp_path / "fetch", remote=mailbox) as rig:
        result = rig.fetch()

        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"fetched {LIMIT} messages")
        assert {path.name: path.read_bytes() for path in rig.local_files()} == stored
        assert rig.remote_names() == []

    wait_for(lambda: _greeting(ingest.port) == 220, what="the guardian to resume ingest")
    wait_for(lambda: _send(ingest.port, "after the fetch"), what="ingest to take mail again")
    assert len(ingest.messages()) == 1
