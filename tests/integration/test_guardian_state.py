"""The guardian's transitions with real rq workers and redis-server: several guardians make
one pause and one resume, a pause by hand stays, floods warn once, new mail is coalesced.
Notices go to the ntfy test double (ntfy cannot be installed here; the double implements
its documented JSON publish endpoint)."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import redis
from rq.cron import get_cron_job_ids
from tests.conftest import TEST_DOMAIN
from tests.support.guardian_rig import ServiceProcess, deliver, drain, notices, settle
from tests.support.net import wait_for
from tests.support.ntfy_double import NtfyDouble
from tests.support.servers import IngestProcess

from onionpost.events import EVENTS_QUEUE, PAUSED_KEY, queue

SWEEP = "onionpost.guardian.jobs.sweep"
RCPT = f"owner@{TEST_DOMAIN}"


def pause_record(redis_url: str) -> dict[str, str]:
    raw = redis.Redis.from_url(redis_url).hgetall(PAUSED_KEY)
    return {key.decode(): value.decode() for key, value in raw.items()}


def sweeps(redis_url: str) -> int:
    return len(get_cron_job_ids(SWEEP, redis.Redis.from_url(redis_url)))


def wait_for_sweeps(redis_url: str, more: int = 3) -> None:
    """Let the guardians sweep `more` times (and finish): they had every chance to act."""
    start = sweeps(redis_url)
    wait_for(lambda: sweeps(redis_url) >= start + more, what=f"{more} sweeps")
    settle(redis_url, rounds=1)


def onionpost(command: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "onionpost", command, *args], text=True,
                          capture_output=True, env={**os.environ, **env}, timeout=30)


def test_three_guardians_make_one_pause_and_one_resume(
        start_service: Callable[..., ServiceProcess], mailbox: Path, ntfy: NtfyDouble,
        redis_url: str) -> None:
    deliver(mailbox, 10)
    for _ in range(3):
        start_service("guardian", max_messages=10)  # each sweeps at start, all at once
    start_service("notifier")
    wait_for(lambda: pause_record(redis_url), what="a pause")
    assert pause_record(redis_url)["by"] == "guardian"
    assert pause_record(redis_url)["reason"] == "messages"

    drain(mailbox)
    wait_for(lambda: not pause_record(redis_url), what="the resume")
    wait_for_sweeps(redis_url)
    assert len(notices(ntfy, "Mailbox full")) == 1
    assert len(notices(ntfy, "Mail accepted again")) == 1
    assert len(ntfy.messages()) == 2


def test_resume_waits_for_the_resume_mark(start_service: Callable[..., ServiceProcess],
                                          mailbox: Path, redis_url: str) -> None:
    paths = deliver(mailbox, 10)
    start_service("guardian", max_messages=10, resume_percent=50)
    wait_for(lambda: pause_record(redis_url), what="a pause")
    for path in paths[:4]:  # 6 left: under the limit, over the mark
        path.unlink()
    wait_for_sweeps(redis_url)
    assert pause_record(redis_url)
    paths[4].unlink()  # 5 left: at the mark
    wait_for(lambda: not pause_record(redis_url), what="the resume")


def test_a_pause_by_hand_is_never_lifted_by_the_guardian(
        start_service: Callable[..., ServiceProcess], service_env: dict[str, str],
        mailbox: Path, ntfy: NtfyDouble, redis_url: str) -> None:
    start_service("guardian", max_messages=10)
    result = onionpost("pause", service_env, "moving house")
    assert result.returncode == 0, result.stderr
    assert pause_record(redis_url)["by"] == "owner"
    assert pause_record(redis_url)["reason"] == "moving house"
    wait_for_sweeps(redis_url)  # an empty box: a guardian pause would be lifted by now
    assert pause_record(redis_url)["by"] == "owner"

    result = onionpost("resume", service_env)
    assert result.returncode == 0, result.stderr
    assert "owner" in result.stdout
    assert not pause_record(redis_url)
    assert ntfy.messages() == []  # the owner knows what the owner did


def test_resume_by_hand_is_refused_while_the_box_is_full(
        service_env: dict[str, str], mailbox: Path, redis_url: str) -> None:
    deliver(mailbox, 3)
    env = {**service_env, "ONIONPOST_MAX_MESSAGES": "3"}
    assert onionpost("pause", env).returncode == 0
    result = onionpost("resume", env)
    assert result.returncode == 75
    assert "3 of 3 messages" in result.stderr
    assert pause_record(redis_url)["by"] == "owner"


def test_resume_percent_zero_leaves_the_pause_to_the_owner(
        start_service: Callable[..., ServiceProcess], mailbox: Path, ntfy: NtfyDouble,
        redis_url: str) -> None:
    deliver(mailbox, 5)
    start_service("guardian", max_messages=5, resume_percent=0)
    start_service("notifier")
    wait_for(lambda: pause_record(redis_url), what="a pause")
    drain(mailbox)
    wait_for_sweeps(redis_url)
    assert pause_record(redis_url)["by"] == "guardian"
    [alert] = notices(ntfy, "Mailbox full")
    assert "onionpost resume" in alert["message"]


def test_a_flood_under_the_limits_warns_once_per_episode(
        start_service: Callable[..., ServiceProcess], mailbox: Path, ntfy: NtfyDouble,
        redis_url: str) -> None:
    start_service("guardian", max_messages=100, flood_messages=5, flood_seconds=60)
    start_service("notifier", notify_new_mail="off")
    deliver(mailbox, 6)
    wait_for(lambda: notices(ntfy, "Unusual amount"), what="the flood warning")
    deliver(mailbox, 10)  # the same episode goes on
    wait_for_sweeps(redis_url)
    [warning] = notices(ntfy, "Unusual amount")
    assert warning["priority"] == 4
    assert "Mail is still accepted" in warning["message"]
    assert not pause_record(redis_url)


def test_new_mail_is_one_notice_per_burst_without_mail_text(
        start_ingest: Callable[..., IngestProcess], start_service: Callable[..., ServiceProcess],
        mailbox: Path, ntfy: NtfyDouble, redis_url: str) -> None:
    start_service("guardian", new_mail_coalesce_seconds=3)
    start_service("notifier")
    ingest = start_ingest(maildir=mailbox, tls="off", circuit_messages_per_minute=100)
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        for number in range(4):
            client.sendmail("secret-sender@example.org", [RCPT],
                            f"Subject: secret subject {number}\r\n\r\nbody\r\n".encode())
    wait_for(lambda: notices(ntfy, "4 new messages"), what="one notice for the burst")
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        client.sendmail("secret-sender@example.org", [RCPT], b"Subject: later\r\n\r\nb\r\n")
    wait_for(lambda: notices(ntfy, "1 new message"), what="a notice for the next burst")
    settle(redis_url)
    assert [m["title"] for m in ntfy.messages()] == ["4 new messages", "1 new message"]
    for message in ntfy.messages():
        assert message["priority"] == 2
        assert "secret" not in message["message"]


def test_jobs_queued_by_an_older_ingest_one_per_message_still_count(
        start_service: Callable[..., ServiceProcess], ntfy: NtfyDouble, redis_url: str) -> None:
    """Before ingest batched its events it queued one `message_stored` job per message; such
    jobs can outlive an upgrade in Redis (appendonly) and must still reach the owner."""
    events = queue(EVENTS_QUEUE, redis.Redis.from_url(redis_url))
    for number in range(2):
        events.enqueue("onionpost.guardian.jobs.message_stored",
                       {"file": f"old-{number}", "size": 10, "recipients": 1})
    start_service("guardian", new_mail_coalesce_seconds=1)
    start_service("notifier")
    wait_for(lambda: notices(ntfy, "2 new messages"), what="one notice for the old jobs")


def test_summary_mode_shows_cleaned_sender_and_subject(
        start_ingest: Callable[..., IngestProcess], start_service: Callable[..., ServiceProcess],
        mailbox: Path, ntfy: NtfyDouble, redis_url: str) -> None:
    start_service("guardian", new_mail_coalesce_seconds=1, notify_new_mail="summary")
    start_service("notifier")
    ingest = start_ingest(maildir=mailbox, tls="off")
    evil = ('From: "Evil\\" Name" <evil@example.org>\r\n'
            "Subject: =?utf-8?q?caf=C3=A9=0D=0AX-Injected:_1?= \"quoted\"\r\n\r\nbody\r\n")
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        client.sendmail("evil@example.org", [RCPT], evil.encode())
    wait_for(lambda: notices(ntfy, "1 new message"), what="the summary")
    [request] = [r for r in ntfy.requests() if r["status"] == 200]
    assert all("injected" not in name.lower() for name, _ in request["headers"])
    [message] = ntfy.messages()
    first_line = message["message"].splitlines()[0]
    assert first_line == 'evil@example.org: café X-Injected: 1 "quoted"'


def test_summary_mode_survives_hostile_headers(
        start_ingest: Callable[..., IngestProcess], start_service: Callable[..., ServiceProcess],
        mailbox: Path, ntfy: NtfyDouble, redis_url: str) -> None:
    """A From with only a name, a From that crashes the email parser, a 32 KB folded From:
    one notice, with no name shown and nothing lost."""
    start_service("guardian", new_mail_coalesce_seconds=2, notify_new_mail="summary")
    start_service("notifier")
    ingest = start_ingest(maildir=mailbox, tls="off")
    huge = "From: " + "\r\n ".join(['"a".' * 200] * 45) + "x@y.example\r\n"
    heads = ["From: Your Bank Security Team\r\nSubject: name only\r\n",
             "From: (x).y@z.example\r\nSubject: parser crash\r\n",
             "Subject: =?utf-8?b?!!!?= huge from\r\n" + huge]
    assert len(huge) > 32_000
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        for head in heads:
            client.sendmail("a@example.org", [RCPT], (head + "\r\nbody\r\n").encode())
    wait_for(lambda: notices(ntfy, "3 new messages"), what="the summary", timeout=60)
    [message] = ntfy.messages()
    assert sorted(message["message"].splitlines()[:3]) == [
        "(no sender): huge from", "(no sender): name only", "(no sender): parser crash"]
