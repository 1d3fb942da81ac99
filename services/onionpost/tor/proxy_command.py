"""`onionpost tor-connect HOST PORT`: an ssh ProxyCommand that reaches HOST through tor.

Connects through ONIONPOST_TOR_SOCKS (onionpost.tor.socks: the name resolved by tor, never
locally; a circuit of its own), then copies stdin to the connection and the connection to
stdout until either side ends.
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket

from onionpost.exits import EX_OK, EX_TEMPFAIL, EX_UNAVAILABLE, CommandError
from onionpost.settings import Settings
from onionpost.tor import socks

CHUNK = 1 << 16
CONNECT_TIMEOUT = 120.0  # building an onion circuit can take a while


def explain(error: socks.StreamRefusedError) -> tuple[int, str]:
    """(exit code, one line) for a SOCKS refusal, in the owner's words."""
    reply = error.onion_reply
    if reply is None:
        return EX_TEMPFAIL, f"tor refused the connection: {error.detail}"
    text = f"{reply.for_owner} (SOCKS error {error.code:#04x})"
    return (EX_UNAVAILABLE if reply.permanent else EX_TEMPFAIL), text


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
    try:
        connection = socks.connect(settings.hostport(settings.tor_socks), args.host, args.port,
                                   CONNECT_TIMEOUT)
    except socks.SocksPortUnreachableError:
        raise CommandError(EX_TEMPFAIL, f"tor's SOCKS port {settings.tor_socks} is not "
                                        "answering (ONIONPOST_TOR_SOCKS)") from None
    except socks.CircuitTimeoutError:
        raise CommandError(EX_TEMPFAIL, f"{args.host}: no circuit within"
                                        f" {CONNECT_TIMEOUT:.0f} s") from None
    except socks.StreamRefusedError as error:
        code, text = explain(error)
        raise CommandError(code, f"{args.host}: {text}") from None
    connection.settimeout(None)
    with connection:
        relay(connection)
    return EX_OK
