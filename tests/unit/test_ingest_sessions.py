"""Ingest's per-connection shortcuts keep aiosmtpd's behaviour: session objects copied from
a prototype share nothing mutable, and our address parser answers as aiosmtpd's does."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from pathlib import Path

from aiosmtpd.smtp import SMTP
from hypothesis import example, given, settings
from hypothesis import strategies as st

from onionpost.ingest.controller import Ingest
from onionpost.ingest.ledger import Ledger, Limits
from onionpost.ingest.server import PLAIN_ADDRESS, IngestSMTP
from onionpost.quota import Quota
from onionpost.settings import Settings

# Deliberately one per process: the handler, its hooks, admission state, configuration.
SHARED = {"loop", "_loop", "event_handler", "_handle_hooks", "_auth_methods", "_auth_callback",
          "sessions", "tls_context", "__ident__", "command_names"}
IMMUTABLE = (type(None), bool, int, float, str, bytes, tuple, frozenset)


def sessions(tmp_path: Path, count: int) -> tuple[IngestSMTP, list[IngestSMTP]]:
    """A prototype and `count` copies, made as serve() makes them."""
    config = Settings(maildir=tmp_path / "inbox", tls="off", domain="x.onion")
    ledger = Ledger.local(Limits(10, 3, 10, Quota(100, 10**6)))

    async def make() -> tuple[IngestSMTP, list[IngestSMTP]]:
        prototype = Ingest(config, "x.onion", ledger, b"salt", None).protocol()
        return prototype, [prototype.fresh() for _ in range(count)]

    return asyncio.run(make())


def test_copies_share_nothing_mutable_but_the_process_wide_parts(tmp_path: Path) -> None:
    prototype, (first, second) = sessions(tmp_path, 2)
    assert first is not second
    for name, value in vars(first).items():
        if isinstance(value, IMMUTABLE) or name in SHARED:
            continue
        assert vars(second)[name] is not value, f"{name} is shared between sessions"
        assert vars(prototype)[name] is not value, f"{name} is shared with the prototype"


def test_copies_have_their_own_streams_and_commands(tmp_path: Path) -> None:
    _, (first, second) = sessions(tmp_path, 2)
    assert first._stream_reader is not second._stream_reader  # type: ignore[attr-defined]  # asyncio's private state
    assert isinstance(first._drain_waiters, collections.deque)  # type: ignore[attr-defined]  # asyncio's private state
    assert first._drain_waiters is not second._drain_waiters  # type: ignore[attr-defined]  # asyncio's private state
    names = [name for name, _ in first._smtp_methods.items()]
    assert names == [name for name, _ in second._smtp_methods.items()]
    assert {"HELO", "EHLO", "MAIL", "RCPT", "DATA", "QUIT", "HELP"} <= set(names)
    for _, method in first._smtp_methods.items():
        assert method.__self__ is first
    assert first._smtp_methods.get("DATA").__func__ is IngestSMTP.smtp_DATA
    assert first._smtp_methods.get("XYZZY") is None


MUTABLE = (dict, list, set, bytearray, collections.deque)


def test_sessions_use_no_mutable_class_attribute(tmp_path: Path) -> None:
    """A mutable class attribute is one object for every session: aiosmtpd's
    command_size_limits was, and grew with every junk command name and every EHLO."""
    _, [first] = sessions(tmp_path, 1)
    for klass in type(first).__mro__:
        for name, value in vars(klass).items():
            if isinstance(value, MUTABLE) and not name.startswith("__"):
                assert name in vars(first), f"{klass.__name__}.{name} is shared by sessions"


def test_command_limits_are_per_session_and_do_not_grow(tmp_path: Path) -> None:
    _, (first, second) = sessions(tmp_path, 2)
    class_level = dict(SMTP.command_size_limits)
    for number in range(100):  # what aiosmtpd's loop and smtp_EHLO do with them
        assert first.command_size_limits[f"JUNK{number}"] == 512
        first.command_size_limits["MAIL"] += 26
        first.command_size_limits["MAIL"] += 10
    assert first.command_size_limits is not second.command_size_limits
    assert dict(first.command_size_limits) == dict(second.command_size_limits) == {"MAIL": 548}
    assert dict(SMTP.command_size_limits) == class_level


ATOM = st.text("abcXYZ019_+=-.!#$%&'*/?^`{|}~\"()<>[]:;@\\, \t", min_size=1, max_size=12)
PLAIN_LOOKING = st.builds(
    lambda local, domain, gap, params: f"<{local}@{domain}>{gap}{params}",
    ATOM, ATOM, st.sampled_from(["", " ", "  ", "\t", " (c) "]),
    st.sampled_from(["", "SIZE=10", "BODY=8BITMIME SMTPUTF8", "(x)", " x"]))
ADDRESSES = st.one_of(
    PLAIN_LOOKING,
    st.text(max_size=80),
    st.builds(lambda local, domain, tail: f"<{local}@{domain}>{tail}",
              st.text(max_size=70), st.text(max_size=30), st.sampled_from(["", " SIZE=10"])),
)


@settings(max_examples=500)
@given(ADDRESSES)
@example("")
@example("<>")
@example("<box@x.onion> SIZE=100 BODY=8BITMIME")
@example("box@x.onion")
@example('<"quoted local"@x.onion>')
@example("<" + "a" * 65 + "@x.onion>")
@example("<@relay:box@x.onion>")
@example("<box@x.onion")
@example("<a.b@x.onion> SIZE=1")
@example("<a..b@x.onion>")
@example("<.a@x.onion>")
@example("<a@x..onion>")
@example("<a@-x.onion>")
@example("<a@x.onion>(comment) SIZE=1")
@example("<a@x.onion>  SIZE=1")
@example("<a@x.onion> SIZE=1\nX")
def test_address_parser_answers_as_aiosmtpds(arg: str) -> None:
    smtp = IngestSMTP.__new__(IngestSMTP)  # _getaddr reads only class attributes
    assert outcome(IngestSMTP._getaddr, smtp, arg) == outcome(SMTP._getaddr, smtp, arg)


def outcome(parse: Callable[[IngestSMTP, str], object], smtp: IngestSMTP, arg: str) -> object:
    """The parse, or the kind of exception it raised (aiosmtpd raises on some inputs, such
    as '<0@[>': ingest's session then answers 451 through handle_exception)."""
    try:
        return parse(smtp, arg)
    except Exception as error:
        return type(error)


def test_the_shortcut_takes_what_clients_send() -> None:
    assert PLAIN_ADDRESS.match("<box@x.onion> SIZE=10516 BODY=8BITMIME")
    assert PLAIN_ADDRESS.match("<first.last+tag@sub.x.onion>")
    assert not PLAIN_ADDRESS.match("<a..b@x.onion>")
