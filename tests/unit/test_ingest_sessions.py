"""Ingest's per-connection shortcuts keep aiosmtpd's behaviour: session objects copied from
a prototype share nothing mutable, and our address parser answers as aiosmtpd's does."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

from aiosmtpd.smtp import SMTP
from hypothesis import example, given
from hypothesis import strategies as st

from onionpost.ingest.ledger import Ledger, Limits
from onionpost.ingest.server import Ingest, IngestSMTP
from onionpost.settings import Settings

# Deliberately one per process: the handler, its hooks, admission state, configuration.
SHARED = {"loop", "_loop", "event_handler", "_handle_hooks", "_auth_methods", "_auth_callback",
          "ledger", "pause", "sessions", "tls_context", "salt", "__ident__"}
IMMUTABLE = (type(None), bool, int, float, str, bytes, tuple, frozenset)


def sessions(tmp_path: Path, count: int) -> tuple[IngestSMTP, list[IngestSMTP]]:
    """A prototype and `count` copies, made as serve() makes them."""
    settings = Settings(maildir=tmp_path / "inbox", tls="off", domain="x.onion")
    ledger = Ledger.local(Limits(10, 3, 10, 100, 10**6))

    async def make() -> tuple[IngestSMTP, list[IngestSMTP]]:
        prototype = Ingest(settings, "x.onion", ledger, b"salt", None).protocol()
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
    assert first._stream_reader is not second._stream_reader
    assert isinstance(first._drain_waiters, collections.deque)
    assert first._drain_waiters is not second._drain_waiters
    assert first._smtp_methods.keys() == second._smtp_methods.keys()
    assert {"HELO", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"} <= first._smtp_methods.keys()
    for method in first._smtp_methods.values():
        assert method.__self__ is first
    assert first._smtp_methods["DATA"].__func__ is IngestSMTP.smtp_DATA


ADDRESSES = st.one_of(
    st.text(max_size=80),
    st.builds(lambda local, domain, tail: f"<{local}@{domain}>{tail}",
              st.text(max_size=70), st.text(max_size=30), st.sampled_from(["", " SIZE=10"])),
)


@given(ADDRESSES)
@example("")
@example("<>")
@example("<box@x.onion> SIZE=100 BODY=8BITMIME")
@example("box@x.onion")
@example('<"quoted local"@x.onion>')
@example("<" + "a" * 65 + "@x.onion>")
@example("<@relay:box@x.onion>")
@example("<box@x.onion")
def test_address_parser_answers_as_aiosmtpds(arg: str) -> None:
    async def both() -> tuple[object, object]:
        smtp = IngestSMTP.__new__(IngestSMTP)
        return IngestSMTP._getaddr(smtp, arg), SMTP._getaddr(smtp, arg)

    ours, theirs = asyncio.run(both())
    assert ours == theirs
