"""The ntfy test double rejects what ntfy rejects (ntfy's server.go and errors.go): the
double is only a fair stand-in if its validation is right."""

from __future__ import annotations

import base64
import json

import pytest
from tests.support.ntfy_double import Recorder, RejectedError, parse_message


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize(("raw", "code"), [
    (b"not json", 40024), (b"[1, 2]", 40024), (body(message="no topic"), 40009),
    (body(topic=""), 40009), (body(topic="a b"), 40009), (body(topic="x" * 65), 40009),
    (body(topic="t", priority=6), 40007), (body(topic="t", priority=-1), 40007),
    (body(topic="t", priority="high"), 40024), (body(topic="t", tags="warning"), 40024),
    (body(topic="t", title=3), 40024), (b'{"topic": "t", "message": "' + b"x" * 9000 + b'"}',
                                        41303)])
def test_invalid_publishes_are_rejected(raw: bytes, code: int) -> None:
    with pytest.raises(RejectedError) as rejected:
        parse_message(raw)
    assert rejected.value.code == code


def test_a_valid_publish_is_stored_as_ntfy_shows_it() -> None:
    message = parse_message(body(topic="alerts", title="T", message="", priority=0,
                                 tags=["warning"]))
    assert message["message"] == "triggered"  # ntfy's text for an empty message
    assert "priority" not in message  # 0 means default, as in ntfy
    assert (message["topic"], message["title"], message["tags"]) == ("alerts", "T", ["warning"])
    assert message["event"] == "message" and len(message["id"]) == 12


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_authentication() -> None:
    recorder = Recorder(tokens={"tk_good"}, users={"owner": "pw:with colon"})
    assert recorder.authenticate("Bearer tk_good") == "token"
    assert recorder.authenticate(basic("owner", "pw:with colon")) == "owner"
    assert recorder.authenticate(None) is None
    assert recorder.authenticate("Digest abc") is None  # unsupported: anonymous, as ntfy
    for header in ("Bearer tk_bad", basic("owner", "wrong"), basic("nobody", "x"),
                   "Basic !!!notbase64"):
        with pytest.raises(RejectedError) as rejected:
            recorder.authenticate(header)
        assert rejected.value.code == 40101
    with pytest.raises(RejectedError) as forbidden:
        recorder.authorize(None)
    assert forbidden.value.code == 40301
    Recorder().authorize(None)  # an open server lets anyone publish
