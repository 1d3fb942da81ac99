"""ingest's self-signed certificate for the onion address, made once and kept (cryptography:
ingest runs this in a child process, see controller.prepare)."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from onionpost import maildir

VALIDITY = datetime.timedelta(days=3650)  # senders pin it: it should outlive them


def certificate_subject(cert_path: Path) -> str | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def ensure_self_signed(directory: Path, domain: str) -> tuple[Path, Path]:
    """Return (cert, key) under directory, creating them when missing or made for another
    domain. The subject is the onion address and nothing else; the dates are in UTC."""
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if key_path.exists() and certificate_subject(cert_path) == domain:
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    # Midnight UTC: the certificate does not tell when (or in which zone) it was made.
    today = datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0,
                                                        microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(today - datetime.timedelta(days=1))
        .not_valid_after(today + VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    maildir.write_private(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    maildir.write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path

