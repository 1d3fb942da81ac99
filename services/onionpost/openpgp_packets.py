"""Whether an ASCII-armored block is an OpenPGP encrypted message (RFC 9580 6, 4.2, 10.3):
its armor, then the headers of its first packets, in bounded work; nothing is decrypted."""

from __future__ import annotations

import binascii
from dataclasses import dataclass

# Not pysequoia's PacketPile.from_bytes (0.1.35): it parses all of the data (~95 ms for 10
# MB of armor here, more than this whole check), cannot be handed only a head (a cut packet
# is an error), ignores a bad CRC, and reads clear text between the markers as packets.
BEGIN, END = b"-----BEGIN PGP MESSAGE-----", b"-----END PGP MESSAGE-----"
# Only this much of the decoded data is looked at: the session key packets (one PKESK is
# ~100 bytes for cv25519, ~530 for RSA 4096) and the header of the encrypted data packet.
DECODED_LIMIT = 8192
HEAD_CHARS = DECODED_LIMIT // 3 * 4
# The armor checksum is verified when the data is at most this long: CRC24 runs in Python
# (~0.11 ms a KiB here), and it is optional (RFC 9580 6.1) and proves nothing against a
# forger, who computes it; short messages (most of those gpg writes a CRC for) get it.
CHECKSUM_LIMIT = 2048
# The armor header lines (Version:, Comment:, ...) and the blank line after them.
ARMOR_HEADERS_LIMIT = 2048
BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# Session key packets and the versions of them RFC 4880 and 9580 define; then the packets
# that hold the encrypted data (SED has no version octet).
ESK_VERSIONS = {1: (3, 6), 3: (4, 5, 6)}
DATA_VERSIONS: dict[int, tuple[int, ...] | None] = {9: None, 18: (1, 2), 20: (1,)}
MIN_FIRST_PARTIAL = 512  # RFC 9580 4.2.1.4
CRC24_INIT, CRC24_POLY = 0xB704CE, 0x1864CFB


def _crc24_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= CRC24_POLY
        table.append(crc & 0xFFFFFF)
    return tuple(table)


CRC24_TABLE = _crc24_table()


def crc24(data: bytes) -> int:
    """The armor checksum of RFC 9580 6.1."""
    crc = CRC24_INIT
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFF) ^ CRC24_TABLE[(crc >> 16) ^ byte]
    return crc


@dataclass(frozen=True)
class Dearmored:
    head: bytes  # the first DECODED_LIMIT bytes of the data (all of it when shorter)
    size: int  # the size of all of it


@dataclass(frozen=True)
class PacketHeader:
    tag: int
    body: int  # offset of the body
    length: int | None  # None: old format's indeterminate length (up to the end)
    partial: bool  # new format's partial body length: more chunks follow


def is_encrypted_message(block: bytes) -> bool:
    """`block`: from BEGIN to END, both included. True when its armor decodes and its packets
    are one or more session key packets (PKESK, SKESK) then one encrypted data packet (SED,
    SEIPD, AEAD) that ends the data."""
    dearmored = dearmor(block)
    return dearmored is not None and encrypted_packets(dearmored)


def dearmor(block: bytes) -> Dearmored | None:
    """The head of the data an armored PGP MESSAGE block holds, or None when it is not one:
    header lines then a blank line, only base64 after them (padded), an optional checksum
    line. Only the head is decoded; when it starts with a session key packet, the whole
    block's characters are checked with one C pass (bytes.translate), and its checksum is
    verified when it is short."""
    if not block.endswith(END):
        return None
    data_start = _after_armor_headers(block[:ARMOR_HEADERS_LIMIT])
    if data_start is None:
        return None
    data_end, checksum = _data_end_and_checksum(block, data_start)
    head = _decoded_head(block[data_start:data_end], data_end - data_start)
    first = None if head is None else packet_header(head, 0)
    if head is None or first is None or first.tag not in ESK_VERSIONS:
        return None  # clear text is turned away here, before any pass over all of it
    size = _decoded_size(block[data_start:data_end])
    if size is None or not _checksum_matches(checksum, head, size):
        return None
    return Dearmored(head, size)


def _decoded_head(data: bytes, length: int) -> bytes | None:
    """The first DECODED_LIMIT bytes `data` (base64 lines) decodes to; from a prefix of it
    long enough for lines of one character."""
    prefix_length = 3 * HEAD_CHARS + 3
    compact = data[:prefix_length].translate(None, b"\r\n")[:HEAD_CHARS]
    if length > prefix_length and len(compact) < HEAD_CHARS:
        return None  # blank lines in the data: not worth reading on
    try:
        return binascii.a2b_base64(compact, strict_mode=True)
    except binascii.Error:
        return None


def _decoded_size(data: bytes) -> int | None:
    """What all of `data` decodes to, in bytes, when it is base64 lines with its padding at
    the end only; else None. One pass: the characters left once the alphabet is removed."""
    others = data.translate(None, BASE64)
    padding = others.translate(None, b"\r\n")
    chars = len(data) - len(others) + len(padding)
    if chars == 0 or chars % 4 or padding not in (b"", b"=", b"==") or not data.endswith(
            padding):
        return None
    return chars // 4 * 3 - len(padding)


def _checksum_matches(line: bytes | None, head: bytes, size: int) -> bool:
    """No `=XXXX` line (it is optional), or a well-formed one, and the CRC24 of the data
    when it is short (CHECKSUM_LIMIT)."""
    if line is None:
        return True
    try:
        expected = binascii.a2b_base64(line[1:], strict_mode=True)
    except binascii.Error:
        return False
    return len(expected) == 3 and (size > CHECKSUM_LIMIT
                                   or crc24(head) == int.from_bytes(expected, "big"))


def _after_armor_headers(prefix: bytes) -> int | None:
    """Where the base64 data starts: after the BEGIN line, `Key: value` lines and the blank
    line, all within `prefix`."""
    lines = prefix.split(b"\n")[:-1]  # the last one may be cut
    if not lines or lines[0].rstrip() != BEGIN:
        return None
    offset = len(lines[0]) + 1
    for line in lines[1:]:
        offset += len(line) + 1
        if not line.strip():
            return offset
        if b": " not in line:
            return None
    return None


def _data_end_and_checksum(block: bytes, data_start: int) -> tuple[int, bytes | None]:
    """Where the base64 data ends (trailing white space left out), and the `=XXXX` checksum
    line when the last line before END is one (a line of data never starts with `=`). Only
    the block's tail is copied: a 10 MB block is sliced once, by the caller."""
    tail_start = max(data_start, len(block) - len(END) - 128)
    tail = block[tail_start:len(block) - len(END)].rstrip()
    line_start = tail.rfind(b"\n") + 1
    if line_start and tail[line_start:].strip().startswith(b"="):
        data = tail[:line_start].rstrip()
        return tail_start + len(data), tail[line_start:].strip()
    return tail_start + len(tail), None


def encrypted_packets(dearmored: Dearmored) -> bool:
    """One or more session key packets, each whole in the head, then an encrypted data
    packet whose length agrees with the size of the data."""
    head, offset, session_keys = dearmored.head, 0, 0
    while (header := packet_header(head, offset)) is not None:
        if header.tag in DATA_VERSIONS:
            return session_keys > 0 and _data_packet_ends_the_data(header, dearmored)
        versions = ESK_VERSIONS.get(header.tag)
        if (versions is None or header.partial or header.length is None
                or not 0 < header.length <= len(head) - header.body
                or head[header.body] not in versions):
            return False
        offset, session_keys = header.body + header.length, session_keys + 1
    return False


def packet_header(data: bytes, offset: int) -> PacketHeader | None:
    """The packet header at `offset` (RFC 9580 4.2: old and new formats), or None when it is
    not one or is cut."""
    if offset >= len(data) or not data[offset] & 0x80:
        return None
    first = data[offset]
    if first & 0x40:
        return _new_format(data, first & 0x3F, offset + 1)
    tag, kind = (first >> 2) & 0x0F, first & 0x03
    if kind == 3:
        return PacketHeader(tag, offset + 1, None, False)
    size = (1, 2, 4)[kind]
    field = data[offset + 1:offset + 1 + size]
    if len(field) < size:
        return None
    return PacketHeader(tag, offset + 1 + size, int.from_bytes(field, "big"), False)


def _new_format(data: bytes, tag: int, at: int) -> PacketHeader | None:
    length = _new_length(data, at)
    if length is None:
        return None
    value, size, partial = length
    return PacketHeader(tag, at + size, value, partial)


def _new_length(data: bytes, at: int) -> tuple[int, int, bool] | None:
    """(length, octets of the length field, partial?) of a new format length at `at`."""
    if at >= len(data):
        return None
    first = data[at]
    if first < 192:
        return first, 1, False
    if first < 224:
        if at + 1 >= len(data):
            return None
        return ((first - 192) << 8) + data[at + 1] + 192, 2, False
    if first == 255:
        field = data[at + 1:at + 5]
        return (int.from_bytes(field, "big"), 5, False) if len(field) == 4 else None
    return 1 << (first & 0x1F), 1, True


def _data_packet_ends_the_data(header: PacketHeader, dearmored: Dearmored) -> bool:
    """The packet's version (when it has one) and lengths: its chunks are followed as far
    as the head goes, and the last one must end where the data ends."""
    head, size = dearmored.head, dearmored.size
    versions = DATA_VERSIONS[header.tag]
    if header.body >= len(head) or (versions is not None
                                   and head[header.body] not in versions):
        return False
    if header.length is None:  # old format, indeterminate: the rest of the data
        return True
    if header.partial and header.length < MIN_FIRST_PARTIAL:
        return False
    end, current = header.body + header.length, header
    while current.partial:
        if end >= len(head):
            return end < size  # beyond the head: at least one more chunk must follow
        length = _new_length(head, end)
        if length is None:
            return False
        value, octets, partial = length
        current = PacketHeader(header.tag, end + octets, value, partial)
        end = current.body + value
    return end == size
