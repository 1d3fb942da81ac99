"""STARTTLS for ingest: the server context (the certificate: ingest/certificate.py)."""

from __future__ import annotations

import ssl
from pathlib import Path


def server_context(cert: Path, key: Path, minimum: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if minimum == "1.3" else ssl.TLSVersion.TLSv1_2)
    context.load_cert_chain(cert, key)
    # No session tickets: a resumed session would tie a sender's circuits together, and
    # the ticket flight after a TLS 1.3 handshake crosses Tor for nothing. num_tickets is
    # TLS 1.3's; OP_NO_TICKET, TLS 1.2's.
    context.num_tickets = 0
    context.options |= ssl.OP_NO_TICKET
    return context
