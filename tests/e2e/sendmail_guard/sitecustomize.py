"""Loaded by the e2e tests into every onionpost-sendmail they start (PYTHONPATH): any local
name lookup of a .onion fails and is written to $DNS_GUARD_LOG, so a test can prove that
no .onion name ever reached the resolver."""

import os
import socket

_LOG = os.environ.get("DNS_GUARD_LOG")


def _guard(real):  # type: ignore[no-untyped-def]  # no typing import in every start-up
    def lookup(host, *args, **kwargs):  # type: ignore[no-untyped-def]  # as socket's own
        name = host.decode() if isinstance(host, bytes) else str(host)
        if ".onion" in name.lower():
            with open(_LOG, "a") as log:  # type: ignore[arg-type]  # set: else no guard
                log.write(f"{real.__name__} {name}\n")
            raise socket.gaierror(socket.EAI_NONAME, "a .onion name was resolved locally")
        return real(host, *args, **kwargs)
    return lookup


if _LOG:
    for _name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        setattr(socket, _name, _guard(getattr(socket, _name)))  # type: ignore[no-untyped-call]  # see _guard
