"""The stored form of a message encrypted at rest: which fields stay outside, the PGP/MIME
structure, and which messages are already encrypted (docs/pgp.md)."""

from __future__ import annotations

import email
import os
from collections.abc import Callable

import pysequoia
import pytest
from tests.support import work

from onionpost.ingest.pgpmime import already_encrypted, header_fields, split_header, wrap

ARMORED = b"-----BEGIN PGP MESSAGE-----\n\nwV4DABC\n=abcd\n-----END PGP MESSAGE-----\n"
MESSAGE = (b"Received: from elsewhere\r\nFrom: A <a@x.onion>\r\nTo: b@y.onion,\r\n c@y.onion\r\n"
           b"X-Mailer: secret tool\r\nSubject: the real\r\n subject\r\nDate: d\r\n"
           b"Message-ID: <1@x>\r\nReferences: <0@x>\r\nIn-Reply-To: <0@x>\r\nCc: e@y.onion\r\n"
           b"To: second@y.onion\r\n\r\nbody\r\n")


def test_the_outer_fields_are_the_kept_ones_copied_byte_for_byte() -> None:
    stored = b"".join(wrap(MESSAGE, ARMORED, hide_subject=True))
    header, _ = split_header(stored)
    assert header.startswith(
        b"From: A <a@x.onion>\r\nTo: b@y.onion,\r\n c@y.onion\r\nCc: e@y.onion\r\nDate: d\r\n"
        b"Message-ID: <1@x>\r\nIn-Reply-To: <0@x>\r\nReferences: <0@x>\r\nSubject: ...\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/encrypted;")
    for hidden in (b"X-Mailer", b"secret tool", b"the real", b"second@", b"elsewhere"):
        assert hidden not in stored


def test_the_subject_is_kept_when_asked_and_absent_when_the_message_has_none() -> None:
    kept = b"".join(wrap(MESSAGE, ARMORED, hide_subject=False))
    assert b"\r\nSubject: the real\r\n subject\r\nMIME-Version" in kept
    bare = b"".join(wrap(b"From: a@x\r\n\r\nhi\r\n", ARMORED, hide_subject=True))
    assert b"Subject" not in bare


def test_the_structure_is_rfc_3156_with_crlf_lines() -> None:
    stored = b"".join(wrap(MESSAGE, ARMORED, hide_subject=True))
    assert b"\n" not in stored.replace(b"\r\n", b"")
    parsed = email.message_from_bytes(stored)
    assert parsed.get_content_type() == "multipart/encrypted"
    assert parsed.get_param("protocol") == "application/pgp-encrypted"
    parts = parsed.get_payload()
    assert isinstance(parts, list)
    control, data = parts
    assert control.get_content_type() == "application/pgp-encrypted"
    assert control.get_payload() == "Version: 1\r\n"
    assert data.get_content_type() == "application/octet-stream"
    assert data.get_payload(decode=True).replace(b"\r\n", b"\n") == ARMORED
    assert parsed.defects == [] and stored.endswith(b"--\r\n")


def test_two_stored_messages_have_different_boundaries() -> None:
    first, second = (email.message_from_bytes(b"".join(wrap(MESSAGE, ARMORED, True)))
                     for _ in range(2))
    assert first.get_boundary() != second.get_boundary()


@pytest.mark.parametrize(("header", "fields"), [
    (b"", {}),
    (b"A: 1\r\n", {b"a": b"A: 1\r\n"}),
    (b"A : 1\r\na: 2\r\n", {b"a": b"A : 1\r\n"}),
    (b" orphan\r\nB: 2\r\n\tmore\r\n", {b"b": b"B: 2\r\n\tmore\r\n"}),
    (b"no colon\r\nC: 3\r\n", {b"c": b"C: 3\r\n"}),
])
def test_header_fields(header: bytes, fields: dict[bytes, bytes]) -> None:
    assert header_fields(header) == fields


def test_split_header() -> None:
    assert split_header(b"A: 1\r\n\r\nbody\r\n") == (b"A: 1\r\n", b"body\r\n")
    assert split_header(b"\r\nbody\r\n") == (b"", b"body\r\n")
    assert split_header(b"A: 1\r\n") == (b"A: 1\r\n", b"")


OWNER_CERT = pysequoia.Tsk.generate("owner@x.onion", profile=pysequoia.Profile.RFC4880
                                    ).extract_certificate()


def ciphertext(clear: bytes) -> bytes:
    """Real OpenPGP ciphertext, armored, CRLF lines, no line break after END."""
    return pysequoia.encrypt(clear, [OWNER_CERT]).strip().replace(b"\n", b"\r\n")


BLOCK = ciphertext(b"my secret")
FAKE_BLOCK = ARMORED.replace(b"\n", b"\r\n")  # the shape only: "wV4DABC" is no packet
CLEAR_BLOCK = b"-----BEGIN PGP MESSAGE-----\r\n\r\nmy secret\r\n-----END PGP MESSAGE-----"
PGP_MIME_PARTS = (b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"
                  b"--x\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
                  b"\r\n--x\r\nContent-Type: application/octet-stream\r\n\r\n" + BLOCK +
                  b"\r\n--x--\r\n")


@pytest.mark.parametrize(("message", "expected"), [
    (b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
     b"boundary=x\r\n\r\n" + PGP_MIME_PARTS, True),
    (b"content-type: Multipart/Encrypted;\r\n\tboundary=x;\r\n"
     b" PROTOCOL=\"Application/PGP-Encrypted\"\r\n\r\n" + PGP_MIME_PARTS, True),
    # Only labelled encrypted: clear text in the parts, beside them, or no parts at all.
    (b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
     b"boundary=x\r\n\r\n--x--\r\n", False),
    (b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
     b"boundary=x\r\n\r\n" + PGP_MIME_PARTS.replace(BLOCK, b"my secret\r\n"), False),
    (b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
     b"boundary=x\r\n\r\n" + PGP_MIME_PARTS.replace(BLOCK, BLOCK + b"my secret\r\n"), False),
    (b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
     b"boundary=x\r\n\r\n" + b"my secret " * 200 + b"\r\n" + PGP_MIME_PARTS, False),
    (b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
     b"boundary=x\r\n\r\n" + PGP_MIME_PARTS.replace(b"--x--\r\n", b"--x\r\n"
     b"Content-Type: text/plain\r\n\r\nmy secret\r\n--x--\r\n"), False),
    (b"Content-Type: multipart/encrypted; protocol=\"application/pkcs7-mime\"\r\n\r\n", False),
    (b"Content-Type: multipart/mixed; protocol=\"application/pgp-encrypted\"\r\n\r\n", False),
    (b"Subject: s\r\n\r\n" + BLOCK, True),
    (b"Subject: s\r\n\r\n\r\n  " + BLOCK + b"\r\n\r\n", True),
    (b"Subject: s\r\n\r\nmy secret\r\n" + BLOCK, False),  # text beside the block
    (b"Subject: s\r\n\r\n" + BLOCK + b"my secret\r\n", False),
    (b"Subject: s\r\n\r\n" + BLOCK + b"secret\r\n" + BLOCK, False),  # text between blocks
    (b"Subject: " + BLOCK + b"\r\nbody\r\n", False),
    (b"Subject: s\r\n\r\nplain\r\n", False),
    # The shape of encryption around what is no ciphertext (issue 13): wrapped.
    (b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
     b"boundary=x\r\n\r\n" + PGP_MIME_PARTS.replace(BLOCK, FAKE_BLOCK), False),
    (b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
     b"boundary=x\r\n\r\n" + PGP_MIME_PARTS.replace(BLOCK, CLEAR_BLOCK), False),
    (b"Subject: s\r\n\r\n" + FAKE_BLOCK + b"\r\n", False),
    (b"Subject: s\r\n\r\n" + CLEAR_BLOCK + b"\r\n", False),
    (b"Subject: s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + CLEAR_BLOCK,
     False),
    (b"Subject: s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + BLOCK, True),
    # A multipart that is not PGP/MIME is wrapped, whatever its body holds.
    (b"Subject: s\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n" + BLOCK, False),
    (b"Subject: s\r\nContent-Type: text/plain;" + b" p=v;" * 300 + b"\r\n\r\n" + BLOCK,
     False),  # a Content-Type too long to read
    (b"Subject: s\r\n\r\n" + BLOCK + b"\r\n-- \r\nAlice\r\n", False),  # a signature
    (b"Subject: s\r\n\r\n" + BLOCK + b"\r\n" + BLOCK.replace(b"MESSAGE", b"SIGNATURE"),
     False),
])
def test_already_encrypted(message: bytes, expected: bool) -> None:
    assert already_encrypted(message) is expected


LABEL = (b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";"
         b" boundary=b0\r\n")


def nested_label(depth: int) -> bytes:
    """multipart/encrypted around `depth` multiparts, each inside the one before."""
    return LABEL + b"\r\n" + b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (n, n + 1)
        for n in range(depth)) + b"x\r\n"


def many_parts(count: int) -> bytes:
    part = b"--b0\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    return LABEL + b"\r\n" + part * count + b"--b0--\r\n"


def folded_label(params: int) -> bytes:
    return (b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n"
            + b"".join(b"\tp%d=v;\r\n" % n for n in range(params)) + b" boundary=x\r\n\r\n"
            + PGP_MIME_PARTS)


def many_fields(count: int) -> bytes:
    return (b"".join(b"X-%d: y\r\n" % n for n in range(count)) + LABEL.replace(b"b0", b"x")
            + b"\r\n" + PGP_MIME_PARTS)


def calls_made(message: bytes, look: Callable[[bytes], object] = already_encrypted) -> int:
    """Function calls while `look` looks at the message (tests/support/work.py)."""
    return work.calls_made(lambda: look(message))


def test_deep_nesting_under_the_label_is_wrapped_not_a_recursion_error() -> None:
    # 3000 levels in 180 KB: the email package recursed once per level (RecursionError).
    assert already_encrypted(nested_label(3000)) is False


@pytest.mark.parametrize("crafted", [nested_label, many_parts, folded_label],
                         ids=["nested", "parts", "folded"])
def test_the_check_does_bounded_work_on_crafted_label(crafted: Callable[[int], bytes]) -> None:
    # 100 times the crafted structure must not cost (much) more than once: the email
    # package was linear or worse (quadratic in parameters) in each of these.
    small, big = calls_made(crafted(100)), calls_made(crafted(10_000))
    assert big < 2 * small + 1000, (small, big)


def test_thousands_of_fields_cost_one_pass_over_them_not_a_parse() -> None:
    # The email package parsed every field again (~8 times header_fields' work).
    crafted = many_fields(10_000)
    one_pass = calls_made(split_header(crafted)[0], header_fields)
    assert calls_made(crafted) < one_pass + 1000


def test_a_huge_header_section_is_read_up_to_a_limit() -> None:
    # 10 MB of "X: y" lines took the single sealing thread 2.2 s (13 times a 10 MB body).
    def header(count: int) -> bytes:
        return b"From: a@x\r\n" + b"X: y\r\n" * count + b"\r\n"

    assert calls_made(header(200_000), header_fields) < 1.1 * calls_made(
        header(50_000), header_fields)
    assert header_fields(header(200_000))[b"from"] == b"From: a@x\r\n"
    late = b"X: y\r\n" * 200_000 + b"From: late@x\r\nSubject: s\r\n\r\nbody\r\n"
    stored = b"".join(wrap(late, ARMORED, hide_subject=True))
    assert b"late@x" not in stored and b"Subject" not in stored  # inside only


def test_a_big_pgp_mime_message_is_recognised_without_reading_its_armor() -> None:
    # The email package read the armor line by line: 0.5 s for 10 MB in the sealing thread.
    # The ciphertext check reads only its head in Python (and all of it in C bytes methods).
    def pgp_mime(block: bytes) -> bytes:
        return LABEL.replace(b"b0", b"x") + b"\r\n" + PGP_MIME_PARTS.replace(BLOCK, block)

    big, small = pgp_mime(ciphertext(os.urandom(7_000_000))), pgp_mime(ciphertext(b"x"))
    assert len(big) > 9_000_000
    assert already_encrypted(big) is True and already_encrypted(small) is True
    assert calls_made(big) < calls_made(small) + 100
    # A part hidden inside the armor block still counts as a part (clear text: wrapped).
    hidden = BLOCK.replace(b"\r\n-----END", b"\r\n--x--\r\nmy secret\r\n-----END")
    parts = PGP_MIME_PARTS.replace(BLOCK, hidden)
    assert already_encrypted(LABEL.replace(b"b0", b"x") + b"\r\n" + parts) is False
