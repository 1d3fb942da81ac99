"""Routing and delivery decisions: who goes where, what is refused, which exit code."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from onionpost import onion
from onionpost.sender.delivery import Result, exit_code, may_commit, permanent_exit_code
from onionpost.sender.message import Draft
from onionpost.sender.routing import ONLY_ONIONS, plan, split
from onionpost.sender.sendmail import NO_LOCAL_NAME, ehlo_name, envelope_sender


def new_onion() -> str:
    return onion.from_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())


A, B, C = new_onion(), new_onion(), new_onion()
BOOK = {"frank": f"frank@{C}"}


def test_recipients_are_grouped_per_domain_in_first_seen_order() -> None:
    result = plan([f"a1@{A}", f"b1@{B}", f"a2@{A}", "frank", f"b2@{B.upper()}"], BOOK.get)
    assert [(r.domain, r.recipients) for r in result.routes] == [
        (A, [f"a1@{A}", f"a2@{A}"]), (B, [f"b1@{B}", f"b2@{B}"]), (C, [f"frank@{C}"])]
    assert result.refused == []


def test_duplicates_are_sent_once() -> None:
    result = plan([f"a@{A}", f"a@{A.upper()}", "frank", f"frank@{C}"], BOOK.get)
    assert [r.recipients for r in result.routes] == [[f"a@{A}"], [f"frank@{C}"]]


@pytest.mark.parametrize(("recipient", "words"), [
    ("someone@example.org", ONLY_ONIONS),
    ("someone@gmail.com", ONLY_ONIONS),
    ("x@expyuzz4wqqyqhjn.onion", "v2 onion"),
    (f"x@{A[:10]}{'b' if A[10] != 'b' else 'c'}{A[11:]}", "checksum"),
    (f"@{A}", "no mailbox"),
    ("nobody", "not in the address book"),
])
def test_refusals(recipient: str, words: str) -> None:
    result = plan([f"ok@{A}", recipient], BOOK.get)
    [refusal] = result.refused
    assert refusal.recipient == recipient
    assert words in refusal.reason
    assert refusal.exit_code == os.EX_NOUSER
    assert [r.recipients for r in result.routes] == [[f"ok@{A}"]]


@given(st.lists(st.sampled_from([f"x@{A}", f"y@{B}", "frank", "z@example.org", "ghost"])))
def test_every_recipient_is_routed_or_refused(recipients: list[str]) -> None:
    result = plan(recipients, BOOK.get)
    routed = {a for route in result.routes for a in route.recipients}
    refused = {r.recipient for r in result.refused}
    for recipient in recipients:
        assert recipient in refused or (BOOK.get(recipient) or recipient) in routed
    for route in result.routes:
        assert all(a.endswith("@" + route.domain) for a in route.recipients)


def test_split_handles_lists_and_display_names() -> None:
    assert split(["a@x.onion, Bob <b@y.onion>", "frank", ""]) == [
        "a@x.onion", "b@y.onion", "frank"]


@pytest.mark.parametrize(("stage", "code", "text", "expected"), [
    ("rcpt", 550, "5.1.1 No such user", os.EX_NOUSER),
    ("rcpt", 550, "5.7.1 Relaying denied", os.EX_NOUSER),
    ("data", 552, "5.3.4 Message too big", os.EX_DATAERR),
    ("data", 554, "5.6.0 Bad content", os.EX_DATAERR),
    ("mail", 550, "5.7.1 Go away", os.EX_UNAVAILABLE),
    ("connect", 554, "no service", os.EX_UNAVAILABLE),
])
def test_permanent_exit_codes(stage: str, code: int, text: str, expected: int) -> None:
    assert permanent_exit_code(stage, code, text) == expected


def result(status: str, code: int = 0) -> Result:
    return Result("r", status, "", code)  # type: ignore[arg-type]  # a Status, from each test


def test_overall_exit_code() -> None:
    assert exit_code([]) == 0
    assert exit_code([result("sent"), result("sent")]) == 0
    assert exit_code([result("sent"), result("temporary", 75)]) == 75
    assert exit_code([result("temporary", 75), result("permanent", 67)]) == 67
    assert exit_code([result("permanent", 69), result("permanent", 65)]) == 65
    assert exit_code([result("held"), result("permanent", 67)]) == 67


def test_commit_only_when_nothing_failed_unless_partial() -> None:
    assert may_commit([], partial=False)
    assert not may_commit([result("temporary", 75)], partial=False)
    assert may_commit([result("permanent", 67)], partial=True)


def test_ehlo_name_is_never_the_hostname() -> None:
    assert ehlo_name(A, "ann@elsewhere.org") == A
    assert ehlo_name(None, f"ann@{B}") == B
    assert ehlo_name(None, "ann@example.org") == NO_LOCAL_NAME
    assert ehlo_name(None, "anon") == NO_LOCAL_NAME


def test_envelope_sender() -> None:
    draft = Draft.parse(f"From: Ann <ann@{A}>\n\nx\n".encode())
    assert envelope_sender(None, draft, B) == f"ann@{A}"
    assert envelope_sender(f"other@{A}", draft, B) == f"other@{A}"
    bare = Draft.parse(b"From: anon\n\nx\n")
    assert envelope_sender(None, bare, B) == f"anon@{B}"
    assert envelope_sender(None, bare, None) == "anon"
    assert envelope_sender(None, Draft.parse(b"\nx\n"), B) is None
