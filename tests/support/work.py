"""How much work a call does, counted rather than timed (the machine is shared and noisy)."""

from __future__ import annotations

import sys
from collections.abc import Callable


def calls_made(look: Callable[[], object]) -> int:
    """Python and C function calls made by `look`: a count that grows with the work done in
    Python, not with the machine's speed."""
    count = 0

    def profile(_frame: object, event: str, _arg: object) -> None:
        nonlocal count
        count += event in ("call", "c_call")

    sys.setprofile(profile)
    try:
        look()
    finally:
        sys.setprofile(None)
    return count
