"""Tor-facing decisions: one SOCKS identity per destination, Tor's onion replies read right."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st
from python_socks import ProxyConnectionError, ProxyError
from tests.support.net import free_port

from onionpost.sender.delivery import TorNotRunningError
from onionpost.sender.transport import tor_connector
from onionpost.tor.socks import ONION_REPLIES, isolation_username, nothing_listens, reply_code

NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567.-", min_size=1, max_size=70)


@given(NAMES, NAMES)
def test_one_socks_identity_per_destination(first: str, second: str) -> None:
    assert isolation_username(first) == isolation_username(first.upper())
    if first.lower() != second.lower():
        assert isolation_username(first) != isolation_username(second)
    assert len(isolation_username(first).encode()) <= 255  # SOCKS5 user name limit


def test_the_user_name_does_not_carry_the_destination() -> None:
    assert "example" not in isolation_username("example.onion")


def test_tor_extended_replies_are_read_from_the_message() -> None:
    # python-socks raises these as "Invalid reply code: 0XF0" with no error_code.
    for code in ONION_REPLIES:
        assert reply_code(ProxyError(f"Invalid reply code: {code:#04X}")) == code


def test_standard_replies_keep_their_code() -> None:
    assert reply_code(ProxyError("Host unreachable", error_code=4)) == 4
    assert reply_code(ProxyError("Malformed connect reply")) is None


@pytest.mark.parametrize(("code", "not_running"), [
    (errno.ECONNREFUSED, True),     # nothing listens on our SOCKS port
    (errno.ETIMEDOUT, False), (errno.EHOSTUNREACH, False), (errno.ENETUNREACH, False),
])
def test_only_a_refused_socks_port_means_tor_is_not_running(code: int,
                                                            not_running: bool) -> None:
    error = ProxyConnectionError(code, "Could not connect to proxy 127.0.0.1:9050")
    assert nothing_listens(error) is not_running


def test_a_closed_socks_port_names_the_configured_address() -> None:
    port = free_port()
    with pytest.raises(TorNotRunningError, match=f"^tor is not running at 127.0.0.1:{port}$"):
        tor_connector("127.0.0.1", port)("x.onion", 25, 5.0)
