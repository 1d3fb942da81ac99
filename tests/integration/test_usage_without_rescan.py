"""Mail removed by hand or by fetch frees the quota at once, with no rescan of the mailbox
(ONIONPOST_QUOTA_RESCAN_INTERVAL an hour): real ingest, real guardian, real fetch-serve."""

from __future__ import annotations

import smtplib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.integration.test_ingest_quota import OPEN_LIMITS, send_one
from tests.support.guardian_rig import ServiceProcess, notices
from tests.support.net import wait_for
from tests.support.ntfy_double import NtfyDouble
from tests.support.servers import IngestProcess

NO_RESCAN = 3600  # longer than any test: only inotify can explain what they see


def fetch_away(maildir: Path) -> None:
    """What `onionpost fetch` makes the server do: list, then delete each message (by the
    real `onionpost fetch-serve`, as sshd runs it)."""
    names = [f"{path.parent.name}/{path.name} {path.stat().st_size}"
             for folder in ("new", "cur") for path in sorted((maildir / folder).iterdir())]
    requests = "LIST\n" + "".join(f"DEL {name}\n" for name in names) + "QUIT\n"
    done = subprocess.run([sys.executable, "-m", "onionpost", "fetch-serve", "--maildir",
                           str(maildir)], input=requests.encode(), capture_output=True,
                          timeout=60, check=True)
    assert done.stdout.count(b"DELETED ") == len(names) > 0, done.stdout


def reply_to_one(port: int) -> int:
    """The code a sender gets for one message (421 at the greeting while paused)."""
    try:
        return send_one(port)[0]
    except smtplib.SMTPConnectError as error:
        return error.smtp_code


def remove_by_hand(maildir: Path) -> None:
    for folder in ("new", "cur"):
        for path in (maildir / folder).iterdir():
            path.unlink()


@pytest.mark.parametrize(("workers", "take_away"), [
    (1, remove_by_hand), (2, remove_by_hand), (1, fetch_away)])
def test_ingest_accepts_again_once_mail_is_taken_away_without_a_rescan(
        start_ingest: Callable[..., IngestProcess], workers: int,
        take_away: Callable[[Path], None]) -> None:
    ingest = start_ingest(max_messages=2, quota_rescan_interval=NO_RESCAN,
                          ingest_workers=workers, **OPEN_LIMITS)
    assert [send_one(ingest.port)[0] for _ in range(3)] == [250, 250, 452]
    seen = ingest.messages()[0]
    seen.rename(ingest.maildir / "cur" / (seen.name + ":2,S"))  # a reader: still counted
    assert send_one(ingest.port)[0] == 452
    take_away(ingest.maildir)
    wait_for(lambda: send_one(ingest.port)[0] == 250, timeout=20,
             what="ingest to see the mailbox emptied")
    assert [send_one(ingest.port)[0] for _ in range(2)] == [250, 452]  # counted exactly


def test_the_guardian_resumes_when_the_owner_fetches_without_a_rescan(
        start_ingest: Callable[..., IngestProcess],
        start_service: Callable[..., ServiceProcess], mailbox: Path, ntfy: NtfyDouble) -> None:
    settings = {"max_messages": 3, "notify_new_mail": "off",
                "quota_rescan_interval": NO_RESCAN}
    start_service("guardian", **settings)
    start_service("notifier", **settings)
    ingest = start_ingest(maildir=mailbox, tls="off", **settings, **OPEN_LIMITS)
    while reply_to_one(ingest.port) == 250:
        pass
    wait_for(lambda: notices(ntfy, "Mailbox full"), what="the pause notice")
    fetch_away(mailbox)
    wait_for(lambda: notices(ntfy, "Mail accepted again"), what="the resume notice")
    [resumed] = notices(ntfy, "Mail accepted again")
    assert "0 of 3 messages" in resumed["message"]
    wait_for(lambda: reply_to_one(ingest.port) == 250, what="ingest to accept mail again")
