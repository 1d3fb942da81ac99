"""`onionpost tor-connect HOST PORT`: an ssh ProxyCommand that reaches HOST through tor.

Connects through ONIONPOST_TOR_SOCKS with the name resolved by tor (never locally), then
copies stdin to the connection and the connection to stdout until either side ends.
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import sys

from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError, ProxyType
from python_socks.sync import Proxy

from onionpost.settings import Settings
from onionpost.tor_socks import reply_code

EX_OK, EX_UNAVAILABLE, EX_TEMPFAIL = 0, 69, 75
CHUNK = 1 << 16
CONNECT_TIMEOUT = 120.0  # building an onion circuit can take a while

# Tor's extended SOCKS5 replies (with `ExtendedErrors`, tor >= 0.4.3): what each means here.
TOR_SOCKS_ERRORS = {
    0xF0: "onion service descriptor not found (offline, or a wrong address)",
    0xF1: "onion service descriptor is invalid",
    0xF2: "onion service introduction failed",
    0xF3: "onion service rendezvous failed",
    0xF4: "onion client authorization missing: this machine's tor has no key for it",
    0xF5: "onion client authorization wrong: the key this tor has is not accepted",
    0xF6: "invalid onion address",
    0xF7: "onion service introduction timed out",
}
PERMANENT = {0xF1, 0xF4, 0xF5, 0xF6}


def explain(error: ProxyError) -> tuple[int, str]:
    """(exit code, one line) for a SOCKS refusal."""
    code = reply_code(error)
    if code is not None and code in TOR_SOCKS_ERRORS:
        text = f"{TOR_SOCKS_ERRORS[code]} (SOCKS error {code:#04x})"
        return (EX_UNAVAILABLE if code in PERMANENT else EX_TEMPFAIL), text
    return EX_TEMPFAIL, f"tor refused the connection: {error}"


def relay(connection: socket.socket, stdin: int = 0, stdout: int = 1) -> None:
    """Copy both ways until the connection closes (stdin EOF only half-closes it)."""
    selector = selectors.DefaultSelector()
    selector.register(stdin, selectors.EVENT_READ)
    selector.register(connection, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is connection:
                data = connection.recv(CHUNK)
                if not data:
                    return
                _write_all(stdout, data)
                continue
            data = os.read(stdin, CHUNK)
            if data:
                connection.sendall(data)
            else:
                selector.unregister(stdin)
                connection.shutdown(socket.SHUT_WR)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(
        prog="onionpost tor-connect",
        description="ssh ProxyCommand through tor: ProxyCommand onionpost tor-connect %%h %%p")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    args = parser.parse_args(argv)
    socks_host, socks_port = settings.hostport(settings.tor_socks)
    proxy = Proxy(ProxyType.SOCKS5, socks_host, socks_port, rdns=True)
    try:
        connection = proxy.connect(dest_host=args.host, dest_port=args.port,
                                   timeout=CONNECT_TIMEOUT)
    except ProxyConnectionError:
        print(f"tor-connect: tor's SOCKS port {settings.tor_socks} is not answering "
              "(ONIONPOST_TOR_SOCKS)", file=sys.stderr)
        return EX_TEMPFAIL
    except ProxyTimeoutError:
        print(f"tor-connect: {args.host}: no circuit within {CONNECT_TIMEOUT:.0f} s",
              file=sys.stderr)
        return EX_TEMPFAIL
    except ProxyError as error:
        code, text = explain(error)
        print(f"tor-connect: {args.host}: {text}", file=sys.stderr)
        return code
    connection.settimeout(None)
    with connection:
        relay(connection)
    return EX_OK
