"""`onionpost status`: tor, the onion address, ingest, mailbox and queues on one screen."""

from __future__ import annotations

import argparse
import json
import socket
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import redis
from rq import Queue
from rq.registry import FailedJobRegistry

from onionpost import events, maildir
from onionpost.exits import EX_OK, EX_UNAVAILABLE
from onionpost.guardian.state import read_pause
from onionpost.notifier.notices import size_text
from onionpost.settings import Settings
from onionpost.tor import control as tor
from onionpost.watch import state as watch_state

QUEUES = (events.EVENTS_QUEUE, events.NOTIFY_QUEUE)
Report = dict[str, Any]


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(
        prog="onionpost status",
        description="tor (bootstrap, descriptor, PoW), onion address, ingest (accepting or "
                    "paused and why), mailbox usage against the limits, queue depths, what "
                    "the watch saw (last success and failure, p50 latency, last upload). "
                    "Exit 0 when tor and Redis answer, 69 when one of them does not.")
    parser.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    args = parser.parse_args(argv)
    report = collect(settings)
    print(json.dumps(report, indent=2) if args.json else render(report))
    reachable = report["tor"]["reachable"] and report["redis"]["reachable"]
    return EX_OK if reachable else EX_UNAVAILABLE


def collect(settings: Settings) -> Report:
    address = tor.our_address(settings)
    tor_report = tor_status(settings, address)
    redis_report, ingest_report, queues_report = redis_status(settings)
    ingest_report["listening"] = listening(settings.ingest_listen)
    ingest_report["listen"] = settings.ingest_listen
    address = tor_report.pop("address", None) or address
    report: Report = {"onion": address, "tor": tor_report, "ingest": ingest_report,
                      "mailbox": mailbox_status(settings), "queues": queues_report,
                      "redis": redis_report, "watch": watch_status(settings)}
    if settings.owner_onion_dir.is_dir():  # the stack's cli mounts it; elsewhere no owner onion
        report["owner_onion"] = tor.owner_address(settings)
    return report


# --- gathering (I/O) -------------------------------------------------------------------
def tor_status(settings: Settings, address: str | None) -> Report:
    report: Report = {"reachable": False, "control": settings.tor_control, "error": None,
                      "bootstrap": None, "summary": None, "descriptor": None, "hsdir": None,
                      "pow": None}
    try:
        controller = tor.connect(settings)
    except tor.TorControlError as error:
        report["error"] = str(error)
        return report
    with controller:
        report["reachable"] = True
        phase = tor.bootstrap(controller)
        report["bootstrap"], report["summary"] = phase.progress, phase.summary
        address = address or tor.our_address(settings, controller)
        report["address"] = address
        if address:
            report.update(descriptor_status(controller, address))
    return report


def descriptor_status(controller: Any, address: str) -> Report:
    pow_state = tor.pow_state(controller, address)
    if pow_state is None:
        return {"descriptor": "not hosted by this tor"}
    outcome = tor.descriptor_published(controller, address)
    published = {True: "published", False: "not found on the HSDirs", None: "unknown"}
    return {"descriptor": published[outcome.published], "hsdir": outcome.received_from,
            "pow": {"enabled": pow_state.enabled, "suggested_effort": pow_state.suggested_effort}}


def redis_status(settings: Settings) -> tuple[Report, Report, Report]:
    where = redacted(settings.redis_url)
    client = events.connect(settings.redis_url)
    try:
        pause = read_pause(client)
        depths = {name: Queue(name, connection=client).count for name in QUEUES}
        failed = {name: FailedJobRegistry(name, connection=client).count for name in QUEUES}
    except (redis.RedisError, OSError) as error:
        return ({"reachable": False, "at": where, "error": type(error).__name__},
                {"state": "unknown"}, {})
    finally:
        client.close()
    ingest: Report = {"state": "accepting"}
    if pause is not None:
        ingest = {"state": "paused", "reason": pause.reason, "by": pause.by,
                  "since": pause.since}
    return ({"reachable": True, "at": where, "error": None}, ingest,
            {**depths, "failed": sum(failed.values()), "failed_by_queue": failed})


def watch_status(settings: Settings) -> Report:
    """What `onionpost watch` recorded in Redis."""
    client = events.connect(settings.redis_url)
    try:
        summary = watch_state.read_summary(client)
    except (redis.RedisError, OSError):
        return {"state": "unknown"}
    finally:
        client.close()
    if summary is None:
        return {"state": "no probe recorded"}
    failure = summary.last_failure
    return {"state": "recorded",
            "last_success": summary.last_success.at if summary.last_success else None,
            "last_failure": ({"at": failure.at, "stage": failure.stage,
                              "detail": failure.detail} if failure else None),
            "p50_latency": summary.p50_latency, "probes_last_day": summary.probes_last_day,
            "last_upload": summary.last_uploaded,
            "upload_failed_since": summary.upload_failed_since,
            "last_heal": summary.last_heal or None}


def mailbox_status(settings: Settings) -> Report:
    usage = maildir.scan(settings.maildir)
    return {"messages": usage.messages, "bytes": usage.bytes,
            "max_messages": settings.max_messages, "max_bytes": settings.max_bytes}


def listening(listen: str) -> bool:
    host, port = Settings.hostport(listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def redacted(url: str) -> str:
    """host:port/db of a Redis URL: never its password."""
    parts = urlsplit(url)
    return f"{parts.hostname or ''}:{parts.port or 6379}{parts.path}"


# --- the screen (pure) -----------------------------------------------------------------
def render(report: Report) -> str:
    lines = [("onion", [report["onion"] or "unknown (no hostname file, tor names none)"])]
    if "owner_onion" in report:
        lines.append(("owner", [f"{report['owner_onion']} (owner onion, client authorization)"
                                if report["owner_onion"] else
                                "unknown: no owner onion hostname (docs/owner.md)"]))
    lines += [("tor", tor_lines(report["tor"])), ("ingest", ingest_lines(report["ingest"])),
              ("mailbox", [mailbox_line(report["mailbox"])]),
              ("queues", [queues_line(report["queues"], report["redis"])])]
    if "watch" in report:
        lines.append(("watch", watch_lines(report["watch"])))
    return "\n".join(f"{title if n == 0 else '':<9} {text}"
                     for title, texts in lines for n, text in enumerate(texts))


def tor_lines(report: Report) -> list[str]:
    if not report["reachable"]:
        return [f"unreachable: {report['error']}"]
    lines = [f"bootstrapped {report['bootstrap']}% ({report['summary']})"]
    if report["descriptor"]:
        lines.append(f"descriptor {report['descriptor']}")
    if report["pow"]:
        pow_report = report["pow"]
        lines.append(f"proof of work on, suggested effort {pow_report['suggested_effort']}"
                     if pow_report["enabled"] else "proof of work off")
    return lines


def ingest_lines(report: Report) -> list[str]:
    listen = (f"listening on {report['listen']}" if report["listening"]
              else f"not listening on {report['listen']}")
    if report["state"] == "paused":
        return [f"PAUSED by {report['by']} since {utc(report['since'])}: {report['reason']}",
                listen]
    if report["state"] == "unknown":
        return [f"accepting or paused: unknown (Redis unreachable); {listen}"]
    return [f"accepting mail; {listen}"]


def mailbox_line(report: Report) -> str:
    percent = max(report["messages"] * 100 // max(report["max_messages"], 1),
                  report["bytes"] * 100 // max(report["max_bytes"], 1))
    return (f"{report['messages']} of {report['max_messages']} messages, "
            f"{size_text(report['bytes'])} of {size_text(report['max_bytes'])} ({percent}% full)")


def queues_line(report: Report, redis_report: Report) -> str:
    if not redis_report["reachable"]:
        return f"unknown: Redis unreachable at {redis_report['at']} ({redis_report['error']})"
    return (f"events {report['events']}, notify {report['notify']}, "
            f"failed jobs {report['failed']}")


def watch_lines(report: Report) -> list[str]:
    if report["state"] == "unknown":
        return ["unknown (Redis unreachable)"]
    if report["state"] != "recorded":
        return ["no probe recorded: is `onionpost watch` running?"]
    success = utc(report["last_success"]) if report["last_success"] else "never"
    lines = [f"last reachable {success}"]
    if failure := report["last_failure"]:
        lines.append(f"last failure {utc(failure['at'])} ({failure['stage']}: "
                     f"{failure['detail']})")
    if report["p50_latency"] is not None:
        lines.append(f"latency p50 {report['p50_latency']:.2f} s "
                     f"({report['probes_last_day']} probes in the last day)")
    upload = utc(report["last_upload"]) if report["last_upload"] else "not seen"
    lines.append(f"descriptor uploaded {upload}, {report['upload_failed_since']} "
                 "failed uploads since")
    if report["last_heal"]:
        lines.append(f"last heal {report['last_heal']}")
    return lines


def utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
