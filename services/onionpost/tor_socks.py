"""Reading Tor's answer to a SOCKS5 connect, for sendmail and for the owner's ssh."""

from __future__ import annotations

import re

from python_socks import ProxyError

# Tor's own replies (SocksPort ... ExtendedErrors, tor >= 0.4.3) are 0xF0-0xF7; each caller
# words them for its reader.
_REPLY_CODE = re.compile(r"reply code: 0x([0-9a-f]{2})\b", re.IGNORECASE)


def reply_code(error: ProxyError) -> int | None:
    """The SOCKS reply code; python-socks only keeps codes of RFC 1928, so Tor's own
    (0xF0-0xF7) are read back from its message."""
    if error.error_code is not None:
        return int(error.error_code)
    match = _REPLY_CODE.search(str(error))
    return int(match.group(1), 16) if match else None
