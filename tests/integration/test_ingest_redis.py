"""Ingest and Redis: the guardian's pause key, `messages_stored` events on rq's `events` queue,
and mail accepted all the same while Redis is down."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from tests.conftest import TEST_DOMAIN
from tests.integration.conftest import RCPT
from tests.support.events import queued_events
from tests.support.net import wait_for
from tests.support.servers import IngestProcess, RedisServer
from tests.support.smtp import RawSMTP, Reply, circuit_address, proxy_v1

from onionpost.events import EVENTS_QUEUE, PAUSED_KEY, MessageStored, queue
from onionpost.ingest.publisher import BATCH_EVENTS, EventPublisher

BODY_MARKER = b"secret-body-text-7f3a"
MESSAGE = b"Subject: event\r\n\r\n" + BODY_MARKER + b"\r\n"


def send(port: int, recipients: list[str] | None = None) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
        assert client.sendmail("a@example.org", recipients or [RCPT], MESSAGE) == {}


def greeting_code(port: int) -> int | None:
    with RawSMTP(port) as client:
        reply = client.greeting()
        return reply.code if reply else None


def test_paused_key_refuses_new_sessions_at_greeting_then_resumes(
        ingest: IngestProcess, redis_url: str) -> None:
    """We chose `421 4.3.2` at the greeting (and close) while paused, rather than not
    listening: a sender learns at once that it should retry later, and ingest keeps its
    socket (other workers, the port, tor's mapping) untouched. The poll interval is well
    under a second; the test polls rather than asserting the delay."""
    client = redis.Redis.from_url(redis_url)
    assert greeting_code(ingest.port) == 220
    client.hset(PAUSED_KEY, mapping={"reason": "max_messages", "since": str(time.time())})
    wait_for(lambda: greeting_code(ingest.port) == 421, timeout=10, what="421 at greeting")
    with RawSMTP(ingest.port) as refused:
        reply = refused.greeting()
        assert (reply.code, reply.enhanced) == (421, "4.3.2")
        assert refused.closed()
    client.delete(PAUSED_KEY)
    wait_for(lambda: greeting_code(ingest.port) == 220, timeout=10, what="220 again")
    send(ingest.port)
    assert len(ingest.messages()) == 1


def test_paused_with_proxy_protocol_the_421_follows_tors_header(
        start_ingest: Callable[..., IngestProcess], redis_url: str) -> None:
    ingest = start_ingest(proxy_protocol="true")
    redis.Redis.from_url(redis_url).hset(PAUSED_KEY, "reason", "test")

    def greeting_over_tor() -> Reply | None:
        with RawSMTP(ingest.port, proxy_line=proxy_v1(circuit_address(7))) as client:
            return client.greeting()

    reply = wait_for(lambda: (r := greeting_over_tor()) and r.code == 421 and r,
                     timeout=10, what="421 after the PROXY header")
    assert reply.enhanced == "4.3.2"
    redis.Redis.from_url(redis_url).delete(PAUSED_KEY)
    wait_for(lambda: (r := greeting_over_tor()) and r.code == 220, timeout=10, what="220")


def test_session_open_before_the_pause_gets_421_at_mail(
        ingest: IngestProcess, redis_url: str) -> None:
    with RawSMTP(ingest.port) as early:
        early.greeting()
        early.command("EHLO client.example")
        redis.Redis.from_url(redis_url).hset(PAUSED_KEY, "reason", "test")
        wait_for(lambda: greeting_code(ingest.port) == 421, timeout=10, what="pause")
        reply = early.command("MAIL FROM:<a@example.org>")
        assert (reply.code, reply.enhanced) == (421, "4.3.2")
        assert early.closed()
    assert ingest.messages() == []


def test_each_stored_message_enqueues_a_small_event(
        ingest: IngestProcess, redis_url: str) -> None:
    before = time.time()
    send(ingest.port)
    send(ingest.port, [RCPT, f"second@{TEST_DOMAIN}", f"third@{TEST_DOMAIN}"])
    payloads = wait_for(lambda: len(queued_events(redis_url)) == 2 and queued_events(redis_url),
                        timeout=10, what="two events")
    files = {path.name: path for path in ingest.messages()}
    for payload in payloads:
        assert set(payload) == {"file", "size", "recipients", "time", "circuit"}
        path = files[payload["file"]]
        assert payload["size"] == path.stat().st_size
        assert before <= payload["time"] <= time.time()
        assert isinstance(payload["circuit"], str) and payload["circuit"]
    assert sorted(payload["recipients"] for payload in payloads) == [1, 3]
    assert BODY_MARKER.decode() not in ingest.logs()
    # The job carries no body (nor any envelope address) in Redis.
    raw = redis.Redis.from_url(redis_url)
    for key in raw.keys("rq:job:*"):
        if raw.type(key) == b"hash":
            dump = b"".join(raw.hgetall(key).values())
            assert BODY_MARKER not in dump
            assert b"example.org" not in dump and TEST_DOMAIN.encode() not in dump


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server this test may stop without disturbing the shared one."""
    server = RedisServer(tmp_path / "own-redis").start()
    yield server
    server.stop()


def test_mail_is_accepted_with_redis_down_and_the_outage_logged_once(
        start_ingest: Callable[..., IngestProcess], own_redis: RedisServer) -> None:
    ingest = start_ingest(redis_url=own_redis.url, circuit_messages_per_minute=100)
    send(ingest.port)
    wait_for(lambda: len(queued_events(own_redis.url)) == 1, timeout=10, what="first event")
    own_redis.stop()
    for _ in range(15):
        send(ingest.port)
    assert len(ingest.messages()) == 16
    wait_for(lambda: "event=redis_down" in ingest.logs(), timeout=10, what="outage logged")
    own_redis.start()  # same port; redis-server without persistence starts empty
    wait_for(lambda: "event=redis_up" in ingest.logs(), timeout=10, what="recovery logged")
    during_outage = {path.name for path in ingest.messages()}
    send(ingest.port)
    [newest] = {path.name for path in ingest.messages()} - during_outage
    # Its event arrives. So may a few from the outage: redis-py's retries can span the restart.
    wait_for(lambda: newest in [event["file"] for event in queued_events(own_redis.url)],
             timeout=10, what="the new message's event")
    assert ingest.logs().count("event=redis_down") == 1
    assert len(ingest.messages()) == 17


def test_events_are_enqueued_in_batches_of_at_most_batch_events(redis_url: str) -> None:
    publisher = EventPublisher(redis_url)
    for number in range(2 * BATCH_EVENTS + 1):  # all pending before the thread first looks
        publisher.publish(MessageStored(f"m{number}", number, 1))
    publisher.start()
    wait_for(lambda: len(queued_events(redis_url)) == 2 * BATCH_EVENTS + 1, timeout=10,
             what="every event")
    publisher.stop()
    jobs = queue(EVENTS_QUEUE, redis.Redis.from_url(redis_url)).get_jobs()
    assert [len(job.args[0]) for job in jobs] == [BATCH_EVENTS, BATCH_EVENTS, 1]
    assert [event["file"] for event in queued_events(redis_url)] == [
        f"m{number}" for number in range(2 * BATCH_EVENTS + 1)]
