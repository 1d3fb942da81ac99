"""`onionpost status`: the screen drawn from a report (pure), and URL redaction."""

from __future__ import annotations

from typing import Any

from onionpost.status import redacted, render

ONION = "lux6itkmc2qhczbli6jwke4cmcemn7dldwhidea3nqfucfdrsjkvldyd.onion"


def report(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "onion": ONION,
        "tor": {"reachable": True, "control": "127.0.0.1:9051", "error": None,
                "bootstrap": 100, "summary": "Done", "descriptor": "published",
                "hsdir": "AB", "pow": {"enabled": True, "suggested_effort": 7}},
        "ingest": {"state": "accepting", "listening": True, "listen": "127.0.0.1:2525"},
        "mailbox": {"messages": 50, "bytes": 1_500_000, "max_messages": 100,
                    "max_bytes": 2_000_000},
        "queues": {"events": 2, "notify": 1, "failed": 3, "failed_by_queue": {}},
        "redis": {"reachable": True, "at": "127.0.0.1:6379/0", "error": None}}
    base.update(changes)
    return base


def test_healthy_screen() -> None:
    assert render(report()).splitlines() == [
        f"onion     {ONION}",
        "tor       bootstrapped 100% (Done)",
        "          descriptor published",
        "          proof of work on, suggested effort 7",
        "ingest    accepting mail; listening on 127.0.0.1:2525",
        "mailbox   50 of 100 messages, 1.5 MB of 2 MB (75% full)",
        "queues    events 2, notify 1, failed jobs 3",
    ]


def test_paused_says_by_whom_since_when_and_why() -> None:
    screen = render(report(ingest={"state": "paused", "reason": "messages", "by": "guardian",
                                   "since": 0.0, "listening": True,
                                   "listen": "127.0.0.1:2525"}))
    assert "ingest    PAUSED by guardian since 1970-01-01 00:00:00 UTC: messages" in screen


def test_unreachable_tor_and_redis_are_one_line_each() -> None:
    screen = render(report(
        onion=None,
        tor={"reachable": False, "error": "cannot connect to tor's ControlPort x:1"},
        ingest={"state": "unknown", "listening": False, "listen": "127.0.0.1:2525"},
        queues={}, redis={"reachable": False, "at": "r:1/0", "error": "ConnectionError"}))
    lines = screen.splitlines()
    assert lines[0].startswith("onion     unknown")
    assert lines[1] == "tor       unreachable: cannot connect to tor's ControlPort x:1"
    assert "unknown (Redis unreachable); not listening on 127.0.0.1:2525" in lines[2]
    assert lines[-1] == "queues    unknown: Redis unreachable at r:1/0 (ConnectionError)"


def test_pow_off_and_the_fullest_limit_wins() -> None:
    tor_report = {**report()["tor"], "pow": {"enabled": False, "suggested_effort": 0}}
    screen = render(report(tor=tor_report, mailbox={"messages": 99, "bytes": 0,
                                                    "max_messages": 100, "max_bytes": 10}))
    assert "proof of work off" in screen
    assert "(99% full)" in screen


def test_redis_url_never_shows_its_password() -> None:
    assert redacted("redis://:hunter2@redis:6380/1") == "redis:6380/1"
    assert redacted("redis://user:pw@127.0.0.1/0") == "127.0.0.1:6379/0"


def test_watch_lines_tell_success_failure_latency_and_upload() -> None:
    watch = {"state": "recorded", "last_success": 86400.0,
             "last_failure": {"at": 3600.0, "stage": "introduction", "detail": "SOCKS 0xf2"},
             "p50_latency": 1.234, "probes_last_day": 288, "last_upload": 7200.0,
             "upload_failed_since": 2, "last_heal": "1970-01-01 01:00:00 UTC: HSPOST"}
    assert render(report(watch=watch)).splitlines()[-5:] == [
        "watch     last reachable 1970-01-02 00:00:00 UTC",
        "          last failure 1970-01-01 01:00:00 UTC (introduction: SOCKS 0xf2)",
        "          latency p50 1.23 s (288 probes in the last day)",
        "          descriptor uploaded 1970-01-01 02:00:00 UTC, 2 failed uploads since",
        "          last heal 1970-01-01 01:00:00 UTC: HSPOST",
    ]
    assert render(report(watch={"state": "no probe recorded"})).endswith(
        "watch     no probe recorded: is `onionpost watch` running?")


def test_the_owner_onion_shows_beside_the_public_one() -> None:
    owner = "aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyp3kead.onion"
    assert render(report(owner_onion=owner)).splitlines()[:3] == [
        f"onion     {ONION}",
        f"owner     {owner} (owner onion, client authorization)",
        "tor       bootstrapped 100% (Done)",
    ]
    assert render(report(owner_onion=None)).splitlines()[1] == (
        "owner     unknown: no owner onion hostname (docs/owner.md)")
