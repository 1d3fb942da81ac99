"""The guardian's flood test over Tor: many circuits flood the onion, the guardian pauses
ingest in time, the owner gets one alert, and mail flows again once the box is drained.

Real tor, ingest, guardian and notifier rq workers, redis-server. ntfy itself cannot be
installed here: notices go to tests/support/ntfy_double.py (ntfy's documented publish API).
"""

from __future__ import annotations

import smtplib
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from onionpost.events import PAUSED_KEY
from tests.e2e.conftest import MailOnion
from tests.e2e.tornet import TorNetwork
from tests.support.flood import Flooder
from tests.support.guardian_rig import ServiceProcess, drain, notices, settle
from tests.support.net import wait_for
from tests.support.ntfy_double import NtfyDouble
from tests.support.servers import IngestProcess

pytestmark = pytest.mark.e2e

LIMIT = 30
TOTAL = 90
SESSIONS = 6  # each on its own circuit


class TorFlooder(Flooder):
    """Flooder whose sessions reach the onion through tor, one circuit per session thread."""

    def __init__(self, network: TorNetwork, address: str, sessions: int) -> None:
        super().__init__(0, f"owner@{address}", sessions)
        self.network = network
        self.address = address

    def open_client(self) -> smtplib.SMTP:
        isolation = f"flood-{threading.current_thread().name}"
        return self.network.smtp(self.address, isolation=isolation)


def greeting(network: TorNetwork, address: str) -> int | None:
    """The greeting's code through tor; None when the stream closed without a reply."""
    try:
        with network.smtp(address, isolation="probe"):
            return 220
    except smtplib.SMTPConnectError as error:
        return error.smtp_code
    except (smtplib.SMTPServerDisconnected, OSError):
        return None


def send_one(network: TorNetwork, address: str) -> bool:
    try:
        with network.smtp(address, isolation="late") as client:
            client.sendmail("late@example.onion", [f"owner@{address}"],
                            b"Subject: after\r\n\r\nhello\r\n")
    except (smtplib.SMTPException, OSError):
        return False
    return True


def test_flood_over_tor_is_paused_in_time_with_one_alert(
        tor_network: TorNetwork, mail_onion: MailOnion,
        onion_ingest: Callable[..., IngestProcess],
        start_service: Callable[..., ServiceProcess], mailbox: Path, ntfy: NtfyDouble,
        redis_url: str) -> None:
    settings = {"max_messages": LIMIT, "notify_new_mail": "off"}
    start_service("guardian", **settings)
    start_service("notifier", **settings)
    # Each session has its own circuit; lift the per-circuit rate so the mailbox limit acts.
    ingest = onion_ingest(maildir=mailbox, max_messages=LIMIT, tls="off",
                          circuit_messages_per_minute=100_000)

    result = TorFlooder(tor_network, mail_onion.address, SESSIONS).run(total=TOTAL)

    stored = {path.name for path in ingest.messages()}
    assert 0 < len(stored) <= LIMIT
    assert len(result.accepted) == len(stored)  # every 250 is a message on disk
    assert sum(result.refused.values()) == TOTAL - len(result.accepted)
    pause = redis.Redis.from_url(redis_url).hgetall(PAUSED_KEY)
    assert (pause[b"by"], pause[b"reason"]) == (b"guardian", b"messages")
    wait_for(lambda: greeting(tor_network, mail_onion.address) == 421, timeout=30,
             what="ingest to refuse at the greeting, seen through tor")

    settle(redis_url)
    [alert] = notices(ntfy, "Mailbox full")
    assert f"{len(stored)} of {LIMIT} messages" in alert["message"]

    assert drain(mailbox) == len(stored)
    wait_for(lambda: notices(ntfy, "Mail accepted again"), timeout=30, what="resume notice")
    wait_for(lambda: send_one(tor_network, mail_onion.address), timeout=30,
             what="mail accepted again over tor")
    assert len(ingest.messages()) == 1
    settle(redis_url)
    assert len(notices(ntfy, "Mailbox full")) == 1
    assert len(notices(ntfy, "Mail accepted again")) == 1
