"""STARTTLS: offered by default, never required, a self-signed certificate naming only the
onion, kept across restarts; TLS 1.2 minimum (1.3 on request); neomutt as the seed uses it."""

from __future__ import annotations

import os
import shutil
import smtplib
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from tests.conftest import TEST_DOMAIN
from tests.integration.conftest import RCPT, split_trace, stored_bodies
from tests.support.servers import IngestProcess
from tests.support.smtp import ProxySMTP, RawSMTP, circuit_address

MESSAGE = b"Subject: tls\r\n\r\nover tls\r\n"


def client_context(maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A client that trusts anything (we inspect the certificate ourselves)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if maximum is not None:
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = maximum
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def starttls(port: int, context: ssl.SSLContext) -> tuple[str, bytes]:
    """(negotiated TLS version, server certificate DER) after a STARTTLS."""
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
        client.ehlo("client.example")
        code, _ = client.starttls(context=context)
        assert code == 220
        sock = client.sock
        assert isinstance(sock, ssl.SSLSocket)
        return sock.version() or "", sock.getpeercert(binary_form=True) or b""


def tls_files(ingest: IngestProcess) -> tuple[Path, Path]:
    directory = ingest.maildir.parent / "tls"
    return directory / "cert.pem", directory / "key.pem"


def test_starttls_is_offered_and_mail_flows_over_it(ingest: IngestProcess) -> None:
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        client.ehlo("client.example")
        assert client.has_extn("starttls")
        client.starttls(context=client_context())
        client.ehlo("client.example")
        assert client.sendmail("a@example.org", [RCPT], MESSAGE) == {}
    [path] = ingest.messages()
    trace, body = split_trace(path.read_bytes())
    assert b" with ESMTPS id " in trace
    assert body == MESSAGE


def test_starttls_is_never_required(ingest: IngestProcess) -> None:
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        assert client.sendmail("a@example.org", [RCPT], MESSAGE) == {}
    assert stored_bodies(ingest) == [MESSAGE]


def test_certificate_names_the_onion_and_nothing_else(ingest: IngestProcess) -> None:
    _, der = starttls(ingest.port, client_context())
    cert = x509.load_der_x509_certificate(der)
    [attribute] = list(cert.subject)
    assert (attribute.oid, attribute.value) == (NameOID.COMMON_NAME, TEST_DOMAIN)
    assert cert.issuer == cert.subject
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [name.value for name in names] == [TEST_DOMAIN]
    cert_path, key_path = tls_files(ingest)
    assert x509.load_pem_x509_certificate(cert_path.read_bytes()) == cert
    assert key_path.stat().st_mode & 0o077 == 0


def test_certificate_and_key_survive_a_restart(
        start_ingest: Callable[..., IngestProcess]) -> None:
    first = start_ingest()
    _, served_before = starttls(first.port, client_context())
    cert_path, key_path = tls_files(first)
    files_before = cert_path.read_bytes(), key_path.read_bytes()
    assert first.stop() == 0
    second = start_ingest(maildir=first.maildir)
    _, served_after = starttls(second.port, client_context())
    assert (cert_path.read_bytes(), key_path.read_bytes()) == files_before
    assert served_after == served_before


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
def test_default_minimum_is_tls_1_2(ingest: IngestProcess) -> None:
    version, _ = starttls(ingest.port, client_context(ssl.TLSVersion.TLSv1_2))
    assert version == "TLSv1.2"
    with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)):
        starttls(ingest.port, client_context(ssl.TLSVersion.TLSv1_1))
    # ingest carries on after a failed handshake
    assert starttls(ingest.port, client_context())[0] == "TLSv1.3"


def test_tls_min_1_3_refuses_a_tls_1_2_client(start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(tls_min="1.3")
    with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)):
        starttls(ingest.port, client_context(ssl.TLSVersion.TLSv1_2))
    assert starttls(ingest.port, client_context())[0] == "TLSv1.3"


def test_tls_off_offers_no_starttls(start_ingest: Callable[..., IngestProcess]) -> None:
    ingest = start_ingest(tls="off")
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        client.ehlo("client.example")
        assert not client.has_extn("starttls")
        code, text = client.docmd("STARTTLS")
        assert (code, text[:5]) == (502, b"5.5.1")
        assert client.sendmail("a@example.org", [RCPT], MESSAGE) == {}
    assert not tls_files(ingest)[0].exists()


# --- neomutt, configured as in the seed -------------------------------------------------

SEED_SETTINGS = """\
set mbox_type=Maildir
set folder=~/mail/
set spoolfile=+inbox
set record=+sent
set postponed=+drafts
set trash=+trash
set from = anon
set hostname = anon
set ssl_verify_host = no
set ssl_verify_dates = no
"""


def neomutt_send(home: Path, port: int, certificate: bytes) -> subprocess.CompletedProcess[str]:
    """neomutt in batch mode with the seed's settings (its smtp_url pointed at our port, the
    default ssl_force_tls) and our certificate pre-accepted, as after a first interactive
    trust-on-first-use."""
    for box in ("drafts", "inbox", "sent", "trash"):
        for sub in ("cur", "new", "tmp"):
            (home / "mail" / box / sub).mkdir(parents=True, exist_ok=True)
    (home / "certificates").write_bytes(certificate)
    config = home / "neomutt.config"
    config.write_text(f'set smtp_url = "smtp://127.0.0.1:{port}"\nset smtp_pass = ""\n'
                      + SEED_SETTINGS + f"set certificate_file = {home / 'certificates'}\n")
    body = home / "body.txt"
    body.write_text("Hello from neomutt.\n")
    with body.open() as stdin:
        return subprocess.run(
            ["neomutt", "-n", "-F", str(config), "-s", "seed habits", "--", RCPT],
            stdin=stdin, capture_output=True, text=True, timeout=60, check=False, cwd=home,
            env={**os.environ, "HOME": str(home), "TERM": "dumb"})


needs_neomutt = pytest.mark.skipif(shutil.which("neomutt") is None,
                                   reason="neomutt is not installed (make system-deps)")


@needs_neomutt
def test_neomutt_with_the_seed_settings_delivers_over_starttls(
        ingest: IngestProcess, tmp_path: Path) -> None:
    result = neomutt_send(tmp_path / "home", ingest.port, tls_files(ingest)[0].read_bytes())
    assert result.returncode == 0, result.stderr
    [path] = ingest.messages()
    trace, body = split_trace(path.read_bytes())
    assert b" with ESMTPS id " in trace
    assert b"Subject: seed habits" in body
    assert b"Hello from neomutt." in body


@needs_neomutt
def test_neomutt_refuses_to_send_without_starttls(
        start_ingest: Callable[..., IngestProcess], tmp_path: Path) -> None:
    """Why STARTTLS is on by default: neomutt's ssl_force_tls=yes sends nothing without it."""
    ingest = start_ingest(tls="off")
    other = start_ingest(maildir=tmp_path / "other" / "inbox")  # any certificate will do
    result = neomutt_send(tmp_path / "home", ingest.port, tls_files(other)[0].read_bytes())
    assert result.returncode != 0
    assert ingest.messages() == []


def test_commands_injected_before_the_tls_handshake_are_discarded(
        ingest: IngestProcess) -> None:
    """STARTTLS command injection (CVE-2011-0411 style): plaintext pipelined after STARTTLS
    must not be executed inside the encrypted session."""
    with RawSMTP(ingest.port) as client:
        client.greeting()
        client.command("EHLO client.example")
        client.send(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
        assert client.reply().code == 220
        try:
            tls = client_context().wrap_socket(client.sock, server_hostname=TEST_DOMAIN)
        except (ssl.SSLError, OSError):
            return  # the server refused the mixed stream: nothing was injected either
        with tls:
            tls.sendall(b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n")
            received = b""
            while received.count(b"\r\n250 ") + received.startswith(b"250 ") < 2:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                received += chunk
    # Our own MAIL is the first of the session: accepted, not "nested".
    assert received.rstrip().endswith(b"250 2.1.0 OK"), received
    assert b"503" not in received


def test_no_login_of_any_kind_before_or_after_starttls(ingest: IngestProcess) -> None:
    """Anyone may write to us: AUTH is neither advertised nor listed in HELP nor accepted."""
    with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
        for secured in (False, True):
            if secured:
                client.starttls(context=client_context())
            client.ehlo("client.example")
            assert not client.has_extn("auth")
            code, text = client.docmd("HELP")
            assert code == 250 and b"AUTH" not in text
            code, _ = client.docmd("AUTH", "PLAIN AGFsaWNlAHNlY3JldA==")
            assert 500 <= code < 600


def test_a_session_after_starttls_gives_its_slot_back(
        start_ingest: Callable[..., IngestProcess]) -> None:
    """STARTTLS starts a new aiosmtpd session on the same connection: the admission (the
    slot it holds) moves over to it and is released when the connection ends."""
    ingest = start_ingest(max_sessions=1, circuit_max_sessions=1)
    for number in range(3):
        with smtplib.SMTP("127.0.0.1", ingest.port, timeout=15) as client:
            client.ehlo("client.example")
            assert client.starttls(context=client_context())[0] == 220
            client.sendmail("a@example.org", [RCPT], MESSAGE + str(number).encode())
    assert len(stored_bodies(ingest)) == 3


def test_the_circuit_rate_counts_messages_sent_over_tls(
        start_ingest: Callable[..., IngestProcess]) -> None:
    """A session keeps its circuit across STARTTLS: a message over TLS spends the circuit's
    token, and the next one from that circuit, in plain text, is told to wait."""
    ingest = start_ingest(proxy_protocol="true", circuit_messages_per_minute=1)
    source = circuit_address(0x7A)
    with ProxySMTP("127.0.0.1", ingest.port, source) as client:
        client.ehlo("client.example")
        assert client.starttls(context=client_context())[0] == 220
        client.sendmail("a@example.org", [RCPT], MESSAGE)
    with ProxySMTP("127.0.0.1", ingest.port, source) as client, \
            pytest.raises(smtplib.SMTPSenderRefused) as refused:
        client.sendmail("a@example.org", [RCPT], MESSAGE)
    assert refused.value.smtp_code == 450
    assert len(stored_bodies(ingest)) == 1
