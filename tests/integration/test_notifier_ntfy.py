"""The ntfy client against the ntfy test double (ntfy itself cannot be installed here; the
double implements ntfy's documented JSON publish endpoint and rejects what ntfy rejects).

Injection: whatever a mail puts into a notice (CR/LF, quotes, non-ASCII) travels inside the
JSON body; the HTTP request keeps the same method, path and header names."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from tests.support.net import free_port
from tests.support.ntfy_double import NtfyDouble

from onionpost.events import Notice
from onionpost.notifier.notices import URGENT
from onionpost.notifier.ntfy import Ntfy, NtfyRejectedError, NtfyUnavailableError

TOKEN = "tk_client"
PLAIN = Notice("n-1", "paused", "Mailbox full", "plain text", URGENT, ["warning"])
EVIL = ["a\r\nX-Injected: 1", "\r\n\r\nGET /admin HTTP/1.1", 'quote " and \\ back',
        "Ünïcødé 📬 \u2028 \x00 \x1b[31m", "Subject: =?utf-8?q?hi?=\nBcc: x@y"]


@pytest.fixture
def double() -> Iterator[NtfyDouble]:
    server = NtfyDouble(tokens=(TOKEN,), users={"owner": "s3cret pass:word"}).start()
    yield server
    server.stop()


def header_names(request: dict[str, object]) -> list[str]:
    return sorted(str(name).lower() for name, _ in request["headers"])  # type: ignore[attr-defined]  # pairs, in the double's JSON


def test_publish_posts_json_with_every_field(double: NtfyDouble) -> None:
    ntfy = Ntfy(double.url, "alerts", token=TOKEN)
    message_id = ntfy.publish(PLAIN)
    [stored] = double.messages("alerts")
    assert stored["id"] == message_id
    assert (stored["title"], stored["message"], stored["priority"], stored["tags"]) == (
        "Mailbox full", "plain text", 5, ["warning"])
    [request] = double.requests()
    assert (request["method"], request["path"]) == ("POST", "/")
    assert json.loads(request["body"]) == {"topic": "alerts", "title": "Mailbox full",
                                           "message": "plain text", "priority": 5,
                                           "tags": ["warning"]}


@pytest.mark.parametrize("evil", EVIL)
def test_mail_text_never_changes_the_request_structure(double: NtfyDouble, evil: str) -> None:
    ntfy = Ntfy(double.url, "alerts", token=TOKEN)
    ntfy.publish(PLAIN)
    ntfy.publish(Notice("n-2", "new_mail", evil, evil, 2, ["envelope"]))
    plain, injected = double.requests()
    assert (injected["method"], injected["path"]) == ("POST", "/")
    assert header_names(injected) == header_names(plain)
    assert all("injected" not in str(name).lower() for name, _ in injected["headers"])
    assert json.loads(injected["body"])["title"] == evil
    assert [m["message"] for m in double.messages()][-1] == evil
    assert len(double.requests()) == 2  # one request each, nothing smuggled


def test_basic_auth(double: NtfyDouble) -> None:
    Ntfy(double.url, "alerts", user="owner", password="s3cret pass:word").publish(PLAIN)
    assert len(double.messages()) == 1


@pytest.mark.parametrize(("credentials", "status"), [
    ({"token": "tk_wrong"}, 401),
    ({"user": "owner", "password": "nope"}, 401),
    ({}, 403),  # anonymous on a server that requires a login
])
def test_bad_or_missing_credentials_are_rejected(double: NtfyDouble, credentials: dict[str, str],
                                                 status: int) -> None:
    with pytest.raises(NtfyRejectedError) as rejected:
        Ntfy(double.url, "alerts", **credentials).publish(PLAIN)  # type: ignore[arg-type]  # credentials only
    assert rejected.value.status == status
    assert "ONIONPOST_NTFY" in str(rejected.value)
    assert double.messages() == []


@pytest.mark.parametrize("topic", ["", "has space", "a/b", "x" * 65, "émoji"])
def test_invalid_topics_are_rejected_as_ntfy_does(double: NtfyDouble, topic: str) -> None:
    with pytest.raises(NtfyRejectedError) as rejected:
        Ntfy(double.url, topic, token=TOKEN).publish(PLAIN)
    assert rejected.value.status == 400
    assert "topic" in str(rejected.value)


def test_server_errors_and_rate_limits_are_temporary(double: NtfyDouble) -> None:
    ntfy = Ntfy(double.url, "alerts", token=TOKEN)
    for status in (500, 502, 503, 429):
        double.fail_next(status)
        with pytest.raises(NtfyUnavailableError, match=str(status)):
            ntfy.publish(PLAIN)
    ntfy.publish(PLAIN)
    assert len(double.messages()) == 1


def test_refused_connection_is_temporary() -> None:
    with pytest.raises(NtfyUnavailableError, match="ConnectError"):
        Ntfy(f"http://127.0.0.1:{free_port()}", "alerts").publish(PLAIN)


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections (backlog) and never answers
        ntfy = Ntfy(f"http://127.0.0.1:{silent.getsockname()[1]}", "alerts", timeout=0.5)
        with pytest.raises(NtfyUnavailableError, match="ReadTimeout"):
            ntfy.publish(PLAIN)


def test_one_connection_serves_many_posts(double: NtfyDouble) -> None:
    ntfy = Ntfy(double.url, "alerts", token=TOKEN)
    for _ in range(5):
        ntfy.publish(PLAIN)
    ntfy.close()
    assert len(double.messages()) == 5
    assert len({r["client_port"] for r in double.requests()}) == 1  # keep-alive
