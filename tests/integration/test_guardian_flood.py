"""The flood: 1,000 messages at a mailbox limited to 100, from 20 concurrent sessions.

Real ingest, real guardian and notifier rq workers, real redis-server. ntfy itself cannot be
installed here: the notices go to tests/support/ntfy_double.py, which implements ntfy's
documented JSON publish endpoint and rejects what ntfy rejects.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from pathlib import Path

import redis
from tests.conftest import TEST_DOMAIN
from tests.support.flood import Flooder
from tests.support.guardian_rig import ServiceProcess, drain, notices, settle
from tests.support.net import wait_for
from tests.support.ntfy_double import NtfyDouble
from tests.support.servers import IngestProcess

from onionpost.events import PAUSED_KEY

RCPT = f"owner@{TEST_DOMAIN}"
LIMIT = 100
# One client address stands for many Tor circuits here: lift the per-circuit limits.
FLOOD_INGEST = {"max_messages": LIMIT, "circuit_max_sessions": 100,
                "circuit_messages_per_minute": 100_000, "tls": "off"}


def greeting(port: int) -> int:
    """The code of the server's greeting (421 while paused)."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10):
            return 220
    except smtplib.SMTPConnectError as error:
        return error.smtp_code


def send_one(port: int) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("late@example.org", [RCPT], b"Subject: after\r\n\r\nhello\r\n")
    except smtplib.SMTPResponseException as error:
        assert error.smtp_code in (421, 452), error
        return False
    return True


def test_flood_is_stopped_at_the_limit_with_one_alert_then_resumes_once(
        start_ingest: Callable[..., IngestProcess],
        start_service: Callable[..., ServiceProcess], mailbox: Path, ntfy: NtfyDouble,
        redis_url: str) -> None:
    settings = {"max_messages": LIMIT, "notify_new_mail": "off"}
    guardians = [start_service("guardian", **settings) for _ in range(2)]
    start_service("notifier", **settings)
    ingest = start_ingest(maildir=mailbox, **FLOOD_INGEST)

    result = Flooder(ingest.port, RCPT, sessions=20).run(total=1000)

    stored = {path.name for path in ingest.messages()}
    assert len(stored) <= LIMIT
    assert len(result.accepted) == len(stored)  # every 250 is a message on disk
    assert all(any(queue_id in name for name in stored) for queue_id in result.queue_ids)
    assert sum(result.refused.values()) == 1000 - len(result.accepted)
    pause = redis.Redis.from_url(redis_url).hgetall(PAUSED_KEY)
    assert pause[b"by"] == b"guardian"
    assert pause[b"reason"] == b"messages"
    wait_for(lambda: greeting(ingest.port) == 421, what="ingest to refuse at the greeting")

    settle(redis_url)
    [alert] = notices(ntfy, "Mailbox full")
    assert alert["priority"] == 5
    assert alert["tags"] == ["warning"]
    assert f"{len(stored)} of {LIMIT} messages" in alert["message"]
    assert len(notices(ntfy, "Unusual amount")) <= 1  # a flood warning may precede the pause

    assert drain(mailbox) == len(stored)
    wait_for(lambda: notices(ntfy, "Mail accepted again"), what="the resume notice")
    wait_for(lambda: greeting(ingest.port) == 220, what="ingest to accept sessions again")
    # ingest's own quota counter follows the disk (inotify sees the fetch)
    wait_for(lambda: send_one(ingest.port), what="ingest to accept mail again")
    assert len(ingest.messages()) == 1
    settle(redis_url)
    assert len(notices(ntfy, "Mail accepted again")) == 1
    assert len(notices(ntfy, "Mailbox full")) == 1
    assert all(guardian.alive() for guardian in guardians)
