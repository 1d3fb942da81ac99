"""tor's onion replies: one classification, read the same by sendmail and by tor-connect;
the package loads stem only for the ControlPort."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from python_socks import ProxyError

from onionpost.exits import EX_TEMPFAIL, EX_UNAVAILABLE
from onionpost.sender.delivery import DestinationRefusedError, UnreachableError
from onionpost.sender.transport import refused
from onionpost.tor.proxy_command import explain
from onionpost.tor.socks import ONION_REPLIES, StreamRefusedError, refusal

TEMPORARY = [0xF0, 0xF1, 0xF2, 0xF3, 0xF7]  # offline, busy, a bad descriptor may be replaced
# A key this tor lacks or that is refused: unavailable to us (69); no ed25519 key: 67.
PERMANENT = {0xF4: os.EX_UNAVAILABLE, 0xF5: os.EX_UNAVAILABLE, 0xF6: os.EX_NOUSER}


def _tor_says(code: int) -> StreamRefusedError:
    return refusal(ProxyError(f"Invalid reply code: {code:#04X}"))


def test_the_table_covers_tor_s_onion_replies() -> None:
    assert sorted(ONION_REPLIES) == sorted([*TEMPORARY, *PERMANENT])


@pytest.mark.parametrize("code", TEMPORARY)
def test_a_temporary_reply_means_try_later_for_both(code: int) -> None:
    error = refused(_tor_says(code))
    assert isinstance(error, UnreachableError)
    assert str(error) == f"cannot reach the onion service: {ONION_REPLIES[code].for_sender}"
    assert explain(_tor_says(code)) == (
        EX_TEMPFAIL, f"{ONION_REPLIES[code].for_owner} (SOCKS error {code:#04x})")


@pytest.mark.parametrize(("code", "exit_code"), PERMANENT.items())
def test_a_permanent_reply_is_final_for_both(code: int, exit_code: int) -> None:
    error = refused(_tor_says(code))
    assert isinstance(error, DestinationRefusedError)
    assert (str(error), error.exit_code) == (ONION_REPLIES[code].for_sender, exit_code)
    assert explain(_tor_says(code))[0] == EX_UNAVAILABLE


def test_a_standard_refusal_is_temporary_in_python_socks_words() -> None:
    error = refusal(ProxyError("Host unreachable", error_code=4))
    assert str(refused(error)) == "cannot reach the onion service: Host unreachable"
    assert isinstance(refused(error), UnreachableError)
    assert explain(error) == (EX_TEMPFAIL, "tor refused the connection: Host unreachable")


def _loaded_after(statement: str) -> str:
    code = f"import sys; {statement}; print(sorted(m for m in sys.modules if m.startswith('stem')))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_sendmail_and_tor_connect_do_not_import_stem() -> None:
    # sendmail runs on every send from neomutt: stem alone costs it ~40 ms.
    assert _loaded_after("import onionpost.sender.sendmail, onionpost.tor.proxy_command") == "[]"


def test_the_control_names_stay_importable_from_the_package() -> None:
    assert _loaded_after("from onionpost.tor import connect, TorControlError") != "[]"
    from onionpost import tor
    from onionpost.tor import control
    assert all(getattr(tor, name) is getattr(control, name) for name in tor.__all__)
