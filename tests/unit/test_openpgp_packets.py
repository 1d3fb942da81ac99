"""Telling an OpenPGP encrypted message from anything else between PGP armor lines: real
ciphertext from Debian's gpg and from pysequoia, crafted fakes, arbitrary bytes."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path

import pysequoia
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.gpg import GnuPG
from tests.support.work import calls_made

from onionpost.openpgp_packets import (
    CHECKSUM_LIMIT,
    DECODED_LIMIT,
    Dearmored,
    crc24,
    dearmor,
    encrypted_packets,
    is_encrypted_message,
    packet_header,
)

OWNER = "owner@x.onion"


@pytest.fixture(scope="module")
def gpg(tmp_path_factory: pytest.TempPathFactory) -> GnuPG:
    keys = GnuPG(tmp_path_factory.mktemp("gnupg") / "home")
    keys.make_key(OWNER)
    keys.make_key("second@x.onion")
    return keys


def block(armored: bytes) -> bytes:
    """From BEGIN to END, as pgpmime hands it over."""
    return armored.strip()


def armor(data: bytes, label: bytes = b"MESSAGE", checksum: bool = True,
          headers: bytes = b"") -> bytes:
    """`data` armored by hand (76 characters a line, CRLF), with its CRC24 line."""
    text = base64.b64encode(data)
    lines = [text[at:at + 76] for at in range(0, len(text), 76)]
    if checksum:
        lines.append(b"=" + base64.b64encode(crc24(data).to_bytes(3, "big")))
    return (b"-----BEGIN PGP " + label + b"-----\r\n" + headers + b"\r\n"
            + b"\r\n".join(lines) + b"\r\n-----END PGP " + label + b"-----")


def old_packet(tag: int, body: bytes, length_octets: int = 1) -> bytes:
    assert tag < 16  # the old format has four bits for it
    kind = {1: 0, 2: 1, 4: 2}[length_octets]
    return bytes([0x80 | tag << 2 | kind]) + len(body).to_bytes(length_octets, "big") + body


def new_packet(tag: int, body: bytes) -> bytes:
    return bytes([0xC0 | tag]) + new_length(len(body)) + body


def new_length(length: int) -> bytes:
    if length < 192:
        return bytes([length])
    if length < 8384:
        length -= 192
        return bytes([(length >> 8) + 192, length & 0xFF])
    return b"\xff" + length.to_bytes(4, "big")


def partial_packet(tag: int, body: bytes, chunk_power: int = 9) -> bytes:
    """`body` in partial chunks of 2**chunk_power octets, then a last, definite chunk."""
    chunk, out, at = 1 << chunk_power, [bytes([0xC0 | tag])], 0
    while len(body) - at > chunk:
        out += [bytes([224 + chunk_power]), body[at:at + chunk]]
        at += chunk
    return b"".join([*out, new_length(len(body) - at), body[at:]])


PKESK = new_packet(1, b"\x03" + os.urandom(93))  # version 3, then key id and the rest
SKESK = new_packet(3, b"\x04\x09\x03\x02" + os.urandom(9))
SEIPD = new_packet(18, b"\x01" + os.urandom(60))


# Real ciphertext -----------------------------------------------------------------------

GPG_MADE: dict[str, Callable[[GnuPG], bytes]] = {
    "public-key": lambda g: g.run("--armor", "-e", "-r", OWNER, data=b"secret").stdout,
    "two-recipients": lambda g: g.run("--armor", "-e", "-r", OWNER, "-r", "second@x.onion",
                                      data=b"secret").stdout,
    "signed-and-encrypted": lambda g: g.run("--armor", "-s", "-e", "-r", OWNER,
                                            data=b"secret").stdout,
    "passphrase-skesk": lambda g: g.run("--passphrase", "words", "--armor", "-c",
                                        data=b"secret").stdout,
    "sed-no-mdc": lambda g: g.run("--armor", "--rfc2440", "-e", "-r", OWNER,
                                  data=b"secret").stdout,
    "comment-header": lambda g: g.run("--armor", "--comment", "made by gpg", "-e", "-r", OWNER,
                                      data=b"secret").stdout,
    # From a pipe gpg does not know the size: partial body lengths.
    "partial-lengths": lambda g: g.run("--armor", "-z", "0", "-e", "-r", OWNER,
                                       data=os.urandom(300_000)).stdout,
    "crlf": lambda g: g.run("--armor", "-e", "-r", OWNER,
                            data=b"secret").stdout.replace(b"\n", b"\r\n"),
}


@pytest.mark.parametrize("kind", sorted(GPG_MADE))
def test_gpg_ciphertext_is_recognised(gpg: GnuPG, kind: str) -> None:
    armored = GPG_MADE[kind](gpg)
    assert b"-----BEGIN PGP MESSAGE-----" in armored
    assert is_encrypted_message(block(armored)) is True


def test_gpg_sed_and_partial_samples_hold_the_packets_they_are_named_for(gpg: GnuPG) -> None:
    # The sample names above are claims: check them on the decoded head.
    sed = dearmor(block(GPG_MADE["sed-no-mdc"](gpg)))
    partial = dearmor(block(GPG_MADE["partial-lengths"](gpg)))
    assert sed is not None and partial is not None
    first = packet_header(sed.head, 0)
    assert first is not None and first.length is not None
    assert (packet_header(sed.head, first.body + first.length) or first).tag == 9
    first = packet_header(partial.head, 0)
    assert first is not None and first.length is not None
    data = packet_header(partial.head, first.body + first.length)
    assert data is not None and data.tag == 18 and data.partial


@pytest.mark.parametrize("profile", ["RFC4880", "RFC9580"])
@pytest.mark.parametrize("size", [5, 3_000_000])
def test_pysequoia_ciphertext_is_recognised(profile: str, size: int) -> None:
    cert = pysequoia.Tsk.generate("x@y", profile=getattr(pysequoia.Profile, profile))
    armored = pysequoia.encrypt(b"x" * size, [cert.extract_certificate()])
    assert is_encrypted_message(block(armored)) is True


def test_crafted_but_well_formed_sequences_are_recognised() -> None:
    """Old and new format headers, every length form, partial chunks: the shape of
    ciphertext (the packets' contents are random bytes, as ciphertext looks)."""
    seipd_body = b"\x01" + os.urandom(20_000)
    for packets in (
        old_packet(1, PKESK[2:]) + SEIPD,
        old_packet(1, PKESK[2:], 2) + old_packet(9, os.urandom(20_000), 4),  # tags < 16
        PKESK + SKESK + new_packet(18, seipd_body),  # five-octet length
        PKESK + new_packet(18, b"\x01" + os.urandom(1000)),  # two-octet length
        PKESK + partial_packet(18, seipd_body),
        PKESK + partial_packet(18, b"\x01" + os.urandom(2000), 10),  # all in the head
        PKESK + bytes([0x80 | 9 << 2 | 3]) + os.urandom(500),  # old format, indeterminate
        SKESK + new_packet(9, os.urandom(40)),  # SED: no version octet
        PKESK + new_packet(20, b"\x01" + os.urandom(60)),  # AEAD
    ):
        assert is_encrypted_message(armor(packets)) is True


# Fakes -------------------------------------------------------------------------------

SIGNATURE_ARMOR = b"-----BEGIN PGP SIGNATURE-----\r\n\r\niQ==\r\n-----END PGP SIGNATURE-----"


def fakes(real: bytes) -> dict[str, bytes]:
    """name -> a block that must not count as encrypted; `real` is real ciphertext."""
    data = dearmor(real)
    assert data is not None
    packets = data.head
    lines = real.split(b"\n")
    return {
        "clear-text": b"-----BEGIN PGP MESSAGE-----\r\n\r\nMy secret: meet at noon.\r\n"
                      b"-----END PGP MESSAGE-----",
        "clear-text-no-blank-line": b"-----BEGIN PGP MESSAGE-----\r\nsecret\r\n"
                                    b"-----END PGP MESSAGE-----",
        "base64-letters-only": b"-----BEGIN PGP MESSAGE-----\r\n\r\nMysecretmeetatnoon\r\n"
                               b"-----END PGP MESSAGE-----",
        "base64-of-clear-text": armor(b"My secret: meet at noon. " * 20),
        "pkesk-then-literal-data": armor(PKESK + new_packet(11, b"b\x00\x00\x00\x00\x00"
                                                            b"my secret")),
        "pkesk-then-compressed": armor(PKESK + new_packet(8, b"\x00my secret")),
        "literal-data-alone": armor(new_packet(11, b"b\x00\x00\x00\x00\x00my secret")),
        "seipd-without-session-key": armor(SEIPD),
        "session-key-alone": armor(PKESK),
        "session-keys-past-the-head": armor(PKESK * (DECODED_LIMIT // len(PKESK) + 1) + SEIPD),
        "marker-then-seipd": armor(new_packet(10, b"PGP") + SEIPD),
        "bad-crc": real.replace(lines[-2].strip(), b"=" + base64.b64encode(
            ((crc24(packets) + 1) & 0xFFFFFF).to_bytes(3, "big"))),
        "malformed-crc": real.replace(lines[-2].strip(), b"=AB"),
        "truncated-data-packet": armor(packets[:-8]),
        "truncated-in-pkesk": armor(packets[:40]),
        "trailing-bytes": armor(packets + b"\x00" * 3),
        "huge-pkesk-length": armor(b"\xc1\xff\xff\xff\xff\xff\x03" + os.urandom(60) + SEIPD),
        "huge-data-length": armor(PKESK + b"\xd2\xff\xff\xff\xff\xff\x01" + os.urandom(60)),
        "huge-old-format-length": armor(PKESK + bytes([0x80 | 9 << 2 | 2])
                                        + b"\xff\xff\xff\xff" + os.urandom(60)),
        "indeterminate-session-key": armor(bytes([0x80 | 1 << 2 | 3]) + PKESK[2:] + SEIPD),
        "partial-session-key": armor(bytes([0xC1, 224 + 9]) + b"\x03" + os.urandom(511)
                                     + b"\x00" + SEIPD),
        "first-partial-too-short": armor(PKESK + partial_packet(18, b"\x01" + os.urandom(3000),
                                                                8)),
        "partial-without-last-chunk": armor(PKESK + bytes([0xD2, 224 + 9]) + b"\x01"
                                            + os.urandom(511)),
        "bad-seipd-version": armor(PKESK + new_packet(18, b"\x07" + os.urandom(60))),
        "bad-pkesk-version": armor(new_packet(1, b"\x09" + os.urandom(93)) + SEIPD),
        "empty-pkesk": armor(new_packet(1, b"") + SEIPD),
        "reserved-tag-0": armor(b"\x80\x05" + os.urandom(5) + SEIPD),
        "signature-label": real.replace(b"PGP MESSAGE", b"PGP SIGNATURE"),
        "signature-armor": SIGNATURE_ARMOR,
        "space-in-data": real.replace(lines[3], lines[3][:10] + b" " + lines[3][10:]),
        "padding-in-the-middle": real.replace(lines[3], lines[3][:8] + b"====" + lines[3][12:]),
        "no-end-line": real[:-len(b"-----END PGP MESSAGE-----")],
        "empty": b"-----BEGIN PGP MESSAGE-----\r\n\r\n-----END PGP MESSAGE-----",
        "blank-lines-in-data": real.replace(lines[2], b"\r\n" * 20_000 + lines[2]),
    }


FAKE_NAMES = sorted(fakes(armor(PKESK + SEIPD)))


@pytest.mark.parametrize("name", FAKE_NAMES)
def test_fakes_are_not_encrypted_messages(gpg: GnuPG, name: str) -> None:
    real = block(GPG_MADE["crlf"](gpg))
    assert is_encrypted_message(real) is True
    crafted = fakes(real)[name]
    assert crafted != real
    assert is_encrypted_message(crafted) is False


def test_signatures_and_keys_relabelled_as_message_are_not_encrypted(gpg: GnuPG) -> None:
    signature = gpg.run("--armor", "--detach-sign", "-u", OWNER, data=b"x").stdout
    signed = gpg.run("--armor", "--sign", "-u", OWNER, data=b"my secret").stdout
    clearsigned = gpg.run("--clearsign", "-u", OWNER, data=b"my secret").stdout
    public = gpg.export(OWNER)
    for armored in (signature, signed, public, clearsigned):
        assert is_encrypted_message(block(armored)) is False
        relabelled = block(armored).replace(b"PGP SIGNATURE", b"PGP MESSAGE").replace(
            b"PGP PUBLIC KEY BLOCK", b"PGP MESSAGE")
        assert is_encrypted_message(relabelled) is False
    assert b"-----BEGIN PGP MESSAGE-----" in signed  # a real message, not an encrypted one


def test_a_missing_crc_line_is_fine_and_a_long_block_skips_it() -> None:
    packets = PKESK + new_packet(18, b"\x01" + os.urandom(60))
    assert is_encrypted_message(armor(packets, checksum=False)) is True
    long = PKESK + new_packet(18, b"\x01" + os.urandom(CHECKSUM_LIMIT))
    wrong = armor(long, checksum=False).replace(b"\r\n-----END", b"\r\n=AAAA\r\n-----END")
    assert is_encrypted_message(wrong) is True  # not computed: see CHECKSUM_LIMIT
    assert is_encrypted_message(armor(long)) is True
    short = armor(packets, checksum=False).replace(b"\r\n-----END", b"\r\n=AAAA\r\n-----END")
    assert is_encrypted_message(short) is False


def test_crc24_known_value() -> None:
    # RFC 4880 6.1's algorithm; the empty input gives the initial value, and gpg's armor
    # of real messages agrees (test_gpg_ciphertext_is_recognised checks every CRC line).
    assert crc24(b"") == 0xB704CE
    assert crc24(b"123456789") == 0x21CF02  # the CRC-24/OPENPGP check value


# Bounds ------------------------------------------------------------------------------



def test_ten_megabytes_of_armor_cost_what_ten_kilobytes_do() -> None:
    """Past the head, the block is only gone through by bytes methods (C, a few ms for 10
    MB: docs/benchmarks.md), never by Python code per line, byte or packet chunk."""
    def real(size: int) -> bytes:
        return armor(PKESK + partial_packet(18, b"\x01" + os.urandom(size)))

    small, big = real(10_000), real(10_000_000)
    assert is_encrypted_message(small) and is_encrypted_message(big)
    assert calls_made(lambda: is_encrypted_message(big)) <= calls_made(
        lambda: is_encrypted_message(small)) + 50
    clear = b"-----BEGIN PGP MESSAGE-----\r\n\r\n" + b"my secret\r\n" * 1_000_000
    assert calls_made(lambda: is_encrypted_message(clear + b"-----END PGP MESSAGE-----")) < 100


def packet_soup() -> st.SearchStrategy[bytes]:
    """Packet headers of every form with bodies of any size: mostly nonsense, sometimes
    ciphertext-shaped."""
    packet = st.builds(
        lambda tag, body, form: (
            old_packet(tag & 0x0F, body[:255 if form == 1 else None], form) if form in (1, 2, 4)
            else new_packet(tag, body) if form == 0
            else partial_packet(tag, body, 9) if len(body) > 512 else new_packet(tag, body)),
        st.sampled_from([1, 3, 9, 11, 18, 20, 2, 0, 63]),
        st.binary(max_size=1200),
        st.sampled_from([0, 1, 2, 4, 5]))
    return st.lists(packet, max_size=4).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=3000), packet_soup()), st.integers(0, 2**40))
def test_the_packet_walk_never_raises(data: bytes, size: int) -> None:
    assert encrypted_packets(Dearmored(data[:DECODED_LIMIT], size)) in (True, False)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.booleans())
def test_dearmor_never_raises_on_any_text(text: bytes, framed: bool) -> None:
    if framed:
        text = b"-----BEGIN PGP MESSAGE-----\r\n" + text + b"-----END PGP MESSAGE-----"
    assert is_encrypted_message(text) in (True, False)


@settings(max_examples=100, deadline=None)
@given(packet_soup(), st.binary(min_size=1, max_size=64), st.binary(min_size=1, max_size=64))
def test_only_the_head_is_read(packets: bytes, tail: bytes, other_tail: bytes) -> None:
    """Past DECODED_LIMIT octets, what the data holds does not change the answer: the work
    is bounded whatever the rest says (only the size of the whole counts)."""
    head = (packets + bytes(DECODED_LIMIT))[:DECODED_LIMIT]
    other = other_tail.ljust(len(tail), b"\x00")[:len(tail)]
    first, second = armor(head + tail), armor(head + other)
    assert is_encrypted_message(first) == is_encrypted_message(second)


def test_a_real_message_with_the_rest_replaced_stays_recognised(tmp_path: Path,
                                                                  gpg: GnuPG) -> None:
    """The limit of what this check proves (docs/pgp.md): the shape of ciphertext, not that
    the data is ciphertext; past the head a forger's bytes are not looked at."""
    real = gpg.run("--armor", "-z", "0", "-e", "-r", OWNER, data=os.urandom(20_000)).stdout
    data = dearmor(block(real))
    assert data is not None and data.size > DECODED_LIMIT
    whole = base64.b64decode(b"".join(block(real).split(b"\n")[2:-2]))
    assert len(whole) == data.size
    forged = whole[:DECODED_LIMIT] + b"clear text, stored as sent".ljust(
        data.size - DECODED_LIMIT, b".")
    assert is_encrypted_message(armor(forged, checksum=False)) is True
