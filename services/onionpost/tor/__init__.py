"""Everything that speaks to tor: its ControlPort (`control`, stem), its SOCKS port (`socks`:
one connect, circuit isolation, the table of tor's replies), client-authorization keys
(`client_auth`) and the `tor-connect` ProxyCommand (`proxy_command`).

The ControlPort names of the former `onionpost.tor` module stay importable from here, loaded
on first use: importing `onionpost.tor.socks` (sendmail does, on every send) must not import
stem (~40 ms)."""

from __future__ import annotations

import importlib
from typing import Any

# The former module's public names; any other public name is looked up in `control` too, so
# that code written against the old module (a new function in it, say) keeps working.
__all__ = [
    "EX_UNAVAILABLE", "FETCH_QUIET_SECONDS", "Bootstrap", "FetchOutcome", "PowState",
    "TorControlError", "address_main", "bootstrap", "connect", "descriptor_published",
    "onion_addresses", "our_address", "parse_bootstrap_phase", "parse_pow_params",
    "pow_state", "service_descriptor", "service_id",
]
# `from onionpost.tor import socks` asks for the attribute before importing the submodule.
_SUBMODULES = frozenset({"client_auth", "control", "proxy_command", "socks"})


def __getattr__(name: str) -> Any:
    if name.startswith("_") or name in _SUBMODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("onionpost.tor.control"), name)
