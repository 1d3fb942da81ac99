"""Ingest, the plain path: delivery with smtplib and swaks, no relay, what the server reveals."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from tests.conftest import TEST_DOMAIN
from tests.integration.conftest import RCPT, reveals_machine, split_trace, stored_bodies
from tests.support.servers import IngestProcess
from tests.support.smtp import RawSMTP, swaks

MESSAGE = b"From: a@example.org\r\nTo: owner\r\nSubject: hello\r\n\r\nfirst line\r\n.dot\r\n"
OUR_NAME = re.compile(r"\A\d+\.M\d+R[0-9A-F]{12}\.onionpost,S=(\d+)\Z")
SOFTWARE = ("python", "aiosmtpd", "1.4", "3.11", "esmtp onionpost")


def test_smtplib_message_is_stored_byte_for_byte(ingest: IngestProcess) -> None:
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        client.ehlo("client.example")
        client.mail("a@example.org")
        client.rcpt(RCPT)
        code, reply = client.data(MESSAGE)
    assert code == 250
    queue_id = reply.decode().rsplit(" ", 1)[1]
    [path] = ingest.messages()
    assert queue_id in path.name
    # smtplib dot-stuffs ".dot"; ingest must undo it exactly.
    assert split_trace(path.read_bytes())[1] == MESSAGE


def test_swaks_message_is_stored(ingest: IngestProcess) -> None:
    result = swaks(ingest.port, RCPT, "--header", "Subject: via swaks", "--body", "swaks body")
    assert result.returncode == 0, result.stdout
    [body] = stored_bodies(ingest)
    assert b"Subject: via swaks" in body
    assert b"swaks body" in body


def test_file_names_carry_no_attacker_text_and_the_true_size(ingest: IngestProcess) -> None:
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        client.ehlo("EVILHELO")
        for index in range(3):
            client.sendmail("EVILSENDER@example.org", [f"EVILRCPT{index}@{TEST_DOMAIN}"],
                            MESSAGE + b"x" * 70 * index + b"\r\n")
    paths = ingest.messages()
    assert len(paths) == 3
    for path in paths:
        match = OUR_NAME.match(path.name)
        assert match, path.name
        assert int(match.group(1)) == path.stat().st_size
        assert "EVIL" not in path.name


def test_recipient_domain_is_case_insensitive(ingest: IngestProcess) -> None:
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        client.ehlo("client.example")
        client.mail("a@example.org")
        assert client.rcpt(f"Owner@{TEST_DOMAIN.upper()}")[0] == 250
        assert client.data(MESSAGE)[0] == 250
    assert len(ingest.messages()) == 1


def test_no_relay_ever(ingest: IngestProcess) -> None:
    relays = ["someone@example.org", f"owner@{TEST_DOMAIN}.evil.example",
              f"owner@sub.{TEST_DOMAIN}", "owner", f"owner%{TEST_DOMAIN}@example.org",
              f"@{TEST_DOMAIN}:owner@example.org", "owner@other.onion"]
    with RawSMTP(ingest.port) as client:
        client.greeting()
        client.command("EHLO client.example")
        assert client.command("MAIL FROM:<a@example.org>").code == 250
        for address in relays:
            reply = client.command(f"RCPT TO:<{address}>")
            assert reply is not None
            assert (reply.code, reply.enhanced) in ((550, "5.7.1"), (553, "5.1.3"),
                                                    (501, "5.5.4")), (address, reply)
        reply = client.command("DATA")
        assert reply.code == 503 and reply.enhanced == "5.5.1"
    assert ingest.messages() == []


def test_banner_and_ehlo_name_only_the_onion(ingest: IngestProcess) -> None:
    with RawSMTP(ingest.port) as client:
        greeting = client.greeting()
        ehlo = client.command("EHLO client.example")
        helo = client.command("HELO client.example")
        noop = client.command("NOOP")
        help_reply = client.command("HELP")
        quit_reply = client.command("QUIT")
    assert greeting.code == 220
    assert greeting.text.split()[0] == TEST_DOMAIN
    assert ehlo.text.splitlines()[0] == TEST_DOMAIN
    assert helo.text == TEST_DOMAIN
    assert (help_reply.code, help_reply.enhanced) == (250, "2.0.0")
    assert (quit_reply.code, quit_reply.enhanced) == (221, "2.0.0")
    for reply in (greeting, ehlo, helo, noop, help_reply, quit_reply):
        assert not reveals_machine(reply.text), reply
        assert not [word for word in SOFTWARE if word in reply.text.lower()], reply


def test_ehlo_offers_8bitmime_smtputf8_size_starttls_and_no_auth(ingest: IngestProcess) -> None:
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        client.ehlo("client.example")
        plain = dict(client.esmtp_features)
        client.starttls()
        client.ehlo("client.example")
        secure = dict(client.esmtp_features)
        auth_reply = client.docmd("AUTH", "PLAIN AGFAYg==")
    assert {"8bitmime", "smtputf8", "size", "starttls"} <= set(plain)
    assert plain["size"] == "10000000"
    assert "auth" not in plain
    assert "auth" not in secure
    assert "starttls" not in secure
    assert auth_reply[0] in (502, 503, 504) and auth_reply[1].startswith(b"5.")


def test_received_header_names_onion_id_and_utc_only(
        start_ingest: Callable[..., IngestProcess], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # the machine's zone must not show (+0530)
    ingest = start_ingest()
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        client.ehlo("sender-host.example")
        client.sendmail("a@example.org", [RCPT], MESSAGE)
    [path] = ingest.messages()
    trace, _ = split_trace(path.read_bytes())
    text = trace.decode("ascii")
    return_path, received = text.split("\r\n", 1)
    assert return_path == "Return-Path: <a@example.org>"
    match = re.fullmatch(
        rf"Received: by {re.escape(TEST_DOMAIN)} \(onionpost\) with ESMTP id ([0-9A-F]{{12}});"
        r"\r\n\t(.+ \+0000)\r\n", received)
    assert match, received
    assert match.group(1) in path.name
    assert parsedate_to_datetime(match.group(2)).utcoffset().total_seconds() == 0
    assert "sender-host" not in text
    assert "+0530" not in ingest.logs() and "IST" not in ingest.logs()
    assert not reveals_machine(received)


def test_eight_bit_and_utf8_envelopes_are_accepted(ingest: IngestProcess) -> None:
    body = "Subject: grüße\r\n\r\nnaïve café — ok\r\n".encode()
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        client.ehlo("client.example")
        refused = client.sendmail("jürgen@exämple.org", [f"bjørn@{TEST_DOMAIN}"], body,
                                  mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert refused == {}
    [path] = ingest.messages()
    trace, stored = split_trace(path.read_bytes())
    assert stored == body
    assert b"with UTF8SMTP id" in trace
    # A non-ASCII sender is not copied into a header it could corrupt.
    assert trace.isascii()


def test_mail_survives_in_new_with_nothing_left_in_tmp(ingest: IngestProcess) -> None:
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        for _ in range(5):
            client.sendmail("a@example.org", [RCPT], MESSAGE)
    maildir = Path(ingest.maildir)
    assert len(ingest.messages()) == 5
    assert list((maildir / "tmp").iterdir()) == []
    assert list((maildir / "cur").iterdir()) == []


def test_domain_comes_from_tors_hostname_file_and_stays(
        start_ingest: Callable[..., IngestProcess], tmp_path: Path) -> None:
    hostname_file = tmp_path / "hs" / "hostname"
    hostname_file.parent.mkdir()
    hostname_file.write_text(TEST_DOMAIN + "\n")
    for _ in range(2):  # and again after a restart
        ingest = start_ingest(domain="", onion_hostname_file=hostname_file)
        with RawSMTP(ingest.port) as client:
            assert client.greeting().text.split()[0] == TEST_DOMAIN
            assert client.command("EHLO client.example").text.splitlines()[0] == TEST_DOMAIN
        assert ingest.stop() == 0
