"""The stored form of a message encrypted at rest: PGP/MIME (RFC 3156) around the message as
received, with the outer header fields of RFC 9788 (docs/pgp.md). Pure functions on bytes."""

from __future__ import annotations

import secrets
from email import message_from_bytes
from email.message import Message

from onionpost.openpgp_packets import is_encrypted_message

# In clear outside, copied from the message (first field of each name): what delivery and
# threading need. Our Return-Path and Received come before them, as without a key.
KEPT = (b"from", b"to", b"cc", b"date", b"message-id", b"in-reply-to", b"references")
HIDDEN_SUBJECT = b"Subject: ...\r\n"
BEGIN, END = b"-----BEGIN PGP MESSAGE-----", b"-----END PGP MESSAGE-----"
# What a mail program writes around the two parts ("This is an OpenPGP/MIME encrypted
# message..."): more text there could be anything, so such a message is wrapped again.
AROUND_PARTS_LIMIT = 1024
# Only a message of RFC 3156's shape reaches the email package, which recurses once per
# nested multipart (RecursionError at ~1000) and is linear or worse (quadratic in the
# parameters of a field) in everything else: a Content-Type of a few short lines; a body
# with at most five lines that start with "--" (three delimiters, the armor's BEGIN and
# END); outside the armor block, room for the text around the parts and their headers.
CONTENT_TYPE_LIMIT = 1024
# Only this much of a header section is looked at (Postfix's header_size_limit is 100 KiB):
# 10 MB of short fields took the one sealing thread 13 times as long as a 10 MB body. A
# field past it stays inside the encryption only.
HEADER_SCAN_LIMIT = 256 * 1024
DASH_LINES_LIMIT = 5
OUTSIDE_ARMOR_LIMIT = 4 * AROUND_PARTS_LIMIT


def split_header(message: bytes) -> tuple[bytes, bytes]:
    """The header section (each line with its CRLF) and the body after the blank line."""
    if message.startswith(b"\r\n"):
        return b"", message[2:]
    end = message.find(b"\r\n\r\n")
    if end < 0:
        return message, b""
    return message[:end + 2], message[end + 4:]


def header_fields(header: bytes) -> dict[bytes, bytes]:
    """Lower-cased name -> the first field of that name, raw, continuation lines and CRLF
    included; in the first HEADER_SCAN_LIMIT bytes (a line cut there is left out)."""
    fields: dict[bytes, bytes] = {}
    name, lines = b"", []
    for line in header[:HEADER_SCAN_LIMIT].split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and name:
            lines.append(line)
            continue
        if name and name not in fields:
            fields[name] = b"\r\n".join(lines) + b"\r\n"
        colon = line.find(b":")
        name, lines = (line[:colon].strip().lower(), [line]) if colon > 0 else (b"", [])
    if name and name not in fields:
        fields[name] = b"\r\n".join(lines) + b"\r\n"
    return fields


def already_encrypted(message: bytes) -> bool:
    """PGP/MIME (multipart/encrypted, protocol application/pgp-encrypted) or a body that is
    one inline PGP message, whose armored block really is OpenPGP ciphertext (session key
    packets, then encrypted data: openpgp_packets): stored as received, not wrapped again.
    A message that only says or looks encrypted (a label, or clear text between the armor
    lines) is not: it is wrapped like any other, and so is any other multipart."""
    header, body = split_header(message)
    content_type = header_fields(header).get(b"content-type")
    if content_type is None:
        return _one_encrypted_block(body)
    if len(content_type) > CONTENT_TYPE_LIMIT:
        return False
    parsed = Message()
    parsed["Content-Type"] = (content_type.partition(b":")[2].replace(b"\r\n", b"")
                              .decode("ascii", "replace").strip())
    if parsed.get_content_type() == "multipart/encrypted":
        protocol = str(parsed.get_param("protocol") or "").lower()
        return (protocol == "application/pgp-encrypted" and _pgp_mime_shaped(body)
                and _pgp_mime_holds_ciphertext(content_type + b"\r\n" + _skeleton(body))
                and is_encrypted_message(body[body.find(BEGIN):body.rfind(END) + len(END)]))
    return parsed.get_content_maintype() != "multipart" and _one_encrypted_block(body)


def _one_encrypted_block(body: bytes) -> bool:
    """Inline PGP: nothing but white space around one armored block of ciphertext. Text
    there, however short, is the sender's own words in clear (no mail program writes a
    standard line there, as they do around PGP/MIME's parts): such a body is wrapped."""
    begin, end = body.find(BEGIN), body.rfind(END) + len(END)
    return (0 <= begin < end and not body[:begin].strip() and not body[end:].strip()
            and is_encrypted_message(body[begin:end]))


def _one_armored_message(text: bytes) -> bool:
    text = text.strip()
    return text.startswith(BEGIN) and text.endswith(END) and text.count(BEGIN) == 1


def _pgp_mime_shaped(body: bytes) -> bool:
    """Cheap bounds (bytes methods only) that RFC 3156's body keeps: see DASH_LINES_LIMIT."""
    begin, end = body.find(BEGIN), body.rfind(END)
    outside = begin + len(body) - end - len(END)
    return (0 <= begin < end and outside <= OUTSIDE_ARMOR_LIMIT
            and body.startswith(b"--") + body.count(b"\n--") <= DASH_LINES_LIMIT)


def _skeleton(body: bytes) -> bytes:
    """The body with its armor block emptied: the email package reads 10 MB of armor line by
    line in Python (0.5 s, 4 times the encryption of as much) but needs only the parts'
    shape. The block holds no line starting with "--" but its END line (_pgp_mime_shaped
    counted all of them), so no delimiter hides in it; else it is left whole."""
    begin, end = body.find(BEGIN), body.rfind(END) + len(END)
    if body.count(b"\n--", begin, end) != 1 or body.count(BEGIN, begin, end) != 1:
        return body
    return body[:begin] + BEGIN + b"\r\n" + END + body[end:]


def _pgp_mime_holds_ciphertext(message: bytes) -> bool:
    """RFC 3156's two parts, the second one armored PGP message, little text around them.
    `message`: the Content-Type field and the body (no other field: they are not needed)."""
    parsed = message_from_bytes(message)
    parts = parsed.get_payload()
    if parsed.defects or not isinstance(parts, list) or len(parts) != 2:
        return False
    around = len(parsed.preamble or "") + len(parsed.epilogue or "")
    version, data = parts
    if not (isinstance(version, Message) and isinstance(data, Message)):
        return False
    payload = data.get_payload(decode=True)
    return (around <= AROUND_PARTS_LIMIT
            and version.get_content_type() == "application/pgp-encrypted"
            and str(version.get_payload()).strip().startswith("Version: 1")
            and data.get_content_type() == "application/octet-stream"
            and isinstance(payload, bytes) and _one_armored_message(payload))


def wrap(message: bytes, armored: bytes, hide_subject: bool) -> list[bytes]:
    """The stored parts after our trace fields: outer fields, then the PGP/MIME structure
    around `armored` (the message encrypted, ASCII armored)."""
    fields = header_fields(split_header(message)[0])
    outer = [fields[name] for name in KEPT if name in fields]
    subject = fields.get(b"subject")
    if subject is not None:
        outer.append(HIDDEN_SUBJECT if hide_subject else subject)
    boundary = b"onionpost-" + secrets.token_hex(16).encode("ascii")
    delimiter = b"--" + boundary + b"\r\n"
    return [
        *outer,
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n"
        b"\tboundary=\"" + boundary + b"\"\r\n"
        b"\r\n"
        b"This is an OpenPGP/MIME encrypted message (RFC 3156).\r\n" + delimiter +
        b"Content-Type: application/pgp-encrypted\r\n"
        b"Content-Description: PGP/MIME version identification\r\n"
        b"\r\n"
        b"Version: 1\r\n"
        b"\r\n" + delimiter +
        b"Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n"
        b"Content-Description: OpenPGP encrypted message\r\n"
        b"Content-Disposition: inline; filename=\"encrypted.asc\"\r\n"
        b"\r\n",
        armored.rstrip(b"\n").replace(b"\n", b"\r\n"),
        b"\r\n\r\n--" + boundary + b"--\r\n",
    ]
