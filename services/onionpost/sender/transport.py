"""sendmail's connector: onionpost.tor.socks' stream, with tor's refusals in the words of
the one who sends mail, and each refusal temporary (75, try later) or permanent."""

from __future__ import annotations

import socket

from onionpost.exits import EX_NOUSER, EX_UNAVAILABLE
from onionpost.sender.delivery import (
    Connector,
    DestinationRefusedError,
    TorNotRunningError,
    UnreachableError,
)
from onionpost.tor import socks


def tor_connector(socks_host: str, socks_port: int) -> Connector:
    def connect(host: str, port: int, timeout: float) -> socket.socket:
        try:
            sock = socks.connect((socks_host, socks_port), host, port, timeout)
        except socks.SocksPortUnreachableError as error:
            if error.refused:
                raise TorNotRunningError(socks_host, socks_port) from None
            raise UnreachableError(f"Tor is not reachable: {error.detail}") from None
        except socks.StreamRefusedError as error:
            raise refused(error) from None
        sock.settimeout(timeout)
        return sock

    return connect


def refused(error: socks.StreamRefusedError) -> UnreachableError | DestinationRefusedError:
    """A wrong address is an unknown addressee (67); a key we lack makes the service
    unavailable to us (69); anything else may pass (75)."""
    reply = error.onion_reply
    if reply is None:
        return UnreachableError(f"cannot reach the onion service: {error.detail}")
    if not reply.permanent:
        return UnreachableError(f"cannot reach the onion service: {reply.for_sender}")
    exit_code = EX_NOUSER if error.code == socks.INVALID_ADDRESS else EX_UNAVAILABLE
    return DestinationRefusedError(reply.for_sender, exit_code)
