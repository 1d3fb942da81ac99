"""What privacy assertions look for: this machine's names, as whole names only.

A short host name (CI machines are often called `vm`) occurs by chance inside random onion
addresses and ids, so a plain substring test fails on innocent text.
"""

from __future__ import annotations

import re
import socket


def machine_names() -> set[str]:
    """The names this machine answers to, except localhost (checked on its own)."""
    names = {socket.gethostname(), socket.getfqdn()}
    names |= {name.split(".", 1)[0] for name in names}
    return {name for name in names if name and not name.startswith("localhost")}


def names_of_this_machine(text: str) -> list[str]:
    """Every whole-name occurrence of this machine's names in text."""
    found: list[str] = []
    for name in sorted(machine_names()):
        found += re.findall(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE)
    return found
