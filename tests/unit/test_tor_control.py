"""onionpost.tor.control's pure parts: bootstrap phase, pow-params, the HSFETCH outcome, the
uploads after a reload."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onionpost.tor.control import (
    Bootstrap,
    FetchOutcome,
    PowState,
    Publication,
    Uploads,
    parse_bootstrap_phase,
    parse_pow_params,
    service_id,
)

ADDRESS = "lux6itkmc2qhczbli6jwke4cmcemn7dldwhidea3nqfucfdrsjkvldyd"


@pytest.mark.parametrize(("text", "expected"), [
    ('NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"', Bootstrap(100, "Done")),
    ('NOTICE BOOTSTRAP PROGRESS=85 TAG=ap_conn_done SUMMARY="Connected to a relay to build'
     ' circuits"', Bootstrap(85, "Connected to a relay to build circuits")),
    ('WARN BOOTSTRAP PROGRESS=5 TAG=conn WARNING="Connection refused" SUMMARY="Connecting"'
     ' REASON=CONNECTREFUSED', Bootstrap(5, "Connecting")),
    ("", Bootstrap(0, "unknown")),
    ("garbage", Bootstrap(0, "unknown")),
])
def test_bootstrap_phase(text: str, expected: Bootstrap) -> None:
    assert parse_bootstrap_phase(text) == expected


def test_pow_params_from_the_inner_layer() -> None:
    inner = ("create2-formats 2\nflow-control 1-2 31\n"
             "pow-params v1 urfK/aqg9R7AhkjSjjYBiDbgqEfiNUgbOU9rH9ubEMI= 42 2026-11-25T14:17:38\n"
             "introduction-point AQAGfwAAAQ\n")
    assert parse_pow_params(inner) == PowState(True, "v1", 42, "2026-11-25T14:17:38")


def test_no_pow_params_means_off() -> None:
    assert parse_pow_params("create2-formats 2\nintroduction-point x\n") == PowState(False)
    # Only a whole line counts, not text that merely contains the keyword.
    assert not parse_pow_params("x-pow-params v1 seed 1 2026\n").enabled


def test_service_id() -> None:
    assert service_id(ADDRESS.upper() + ".onion") == ADDRESS
    assert service_id(ADDRESS) == ADDRESS


def test_fetch_is_published_once_an_hsdir_returns_it() -> None:
    outcome = FetchOutcome(ADDRESS)
    outcome.feed("REQUESTED", ADDRESS, "A")
    assert outcome.published is None
    outcome.feed("FAILED", ADDRESS, "A")
    assert outcome.published is False  # so far
    outcome.feed("REQUESTED", ADDRESS, "B")
    assert outcome.published is None
    outcome.feed("RECEIVED", ADDRESS, "B")
    assert (outcome.published, outcome.received_from) == (True, "B")
    outcome.feed("FAILED", ADDRESS, "C")
    assert outcome.published is True


def test_fetch_ignores_other_addresses_and_failures_it_did_not_ask_for() -> None:
    outcome = FetchOutcome(ADDRESS)
    outcome.feed("RECEIVED", "other", "A")
    outcome.feed("FAILED", ADDRESS, "upload-hsdir")  # an upload failure, not our fetch
    assert outcome.published is None
    assert outcome.failed == set()


@given(st.lists(st.tuples(st.sampled_from(["REQUESTED", "FAILED", "RECEIVED", "UPLOAD"]),
                          st.sampled_from("ABCD"))))
def test_fetch_outcome_is_consistent(events: list[tuple[str, str]]) -> None:
    outcome = FetchOutcome(ADDRESS)
    for action, hsdir in events:
        outcome.feed(action, ADDRESS, hsdir)
    received = any(action == "RECEIVED" for action, _ in events)
    assert (outcome.published is True) == received
    assert outcome.failed <= outcome.requested
    if outcome.published is False:
        assert outcome.requested and outcome.failed == outcome.requested


def _uploads(*events: tuple[str, str, str | None], address: str = ADDRESS) -> Uploads:
    uploads = Uploads(ADDRESS)
    for action, hsdir, reason in events:
        uploads.feed(action, address, hsdir, reason)
    return uploads


def test_uploads_settle_when_every_hsdir_answered() -> None:
    uploads = _uploads(("UPLOAD", "A", None), ("UPLOAD", "B", None), ("UPLOADED", "A", None))
    assert not uploads.settled
    uploads.feed("UPLOADED", ADDRESS, "B", None)
    assert uploads.settled and uploads.uploaded == 2
    assert Publication(online=True, uploads=uploads).published


def test_a_refusal_is_not_a_publication() -> None:
    """Same revision counter as the HSDir's copy (the same second): UPLOAD_REJECTED."""
    uploads = _uploads(("UPLOAD", "A", None), ("UPLOAD", "B", None),
                       ("UPLOADED", "A", None), ("FAILED", "B", "UPLOAD_REJECTED"))
    assert uploads.settled and uploads.rejected == 1 and uploads.failed == 0
    assert not Publication(online=True, uploads=uploads).published


def test_uploads_ignore_other_services_and_fetch_failures() -> None:
    uploads = _uploads(("UPLOAD", "A", None), ("UPLOADED", "A", None),
                       ("FAILED", "B", "NOT_FOUND"))  # a fetch by someone: no UPLOAD to B
    other = _uploads(("UPLOAD", "A", None), ("UPLOADED", "A", None), address="x" * 56)
    assert uploads.settled and uploads.failed == 0
    assert not other.settled and other.uploaded == 0


def test_nothing_uploaded_is_not_settled() -> None:
    assert not _uploads().settled
    assert not Publication(online=False, uploads=_uploads()).published
