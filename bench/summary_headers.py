"""Summary-mode headers: the email parser on a hostile 32 KB From, whole vs cut to the cap.

For each shape of From value (the shapes the address parser is slow on), the time of the
guardian's `mailbox.summary_of` beside its anchor, measured in the same run: the stdlib
parser handed the whole value, as the guardian did before the cap. Once at 32 KB (never
parsed now), once just under the cap (the most the parser is ever handed). Run with
`python -m bench.summary_headers` (BENCH_HEADER_BYTES, default 32768).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from email.parser import BytesHeaderParser
from email.policy import default

from onionpost.guardian.mailbox import FIELD_CHARS, PARSE_ERRORS, summary_of

SHAPES = {
    'quoted words "a"."a"…': '"a".',
    "words a a a…": "a ",
    "list a,a,a…": "a,",
    'quoted pairs "\\\\…': '"\\\\',
}


def whole_value_parsed(head: bytes) -> None:
    """The anchor: what the guardian did before, the parser on the whole From."""
    try:
        header = BytesHeaderParser(policy=default).parsebytes(head)["From"]
        _ = header.addresses if header else ()
    except PARSE_ERRORS:
        pass


def seconds(work: Callable[[bytes], object], head: bytes) -> float:
    start = time.perf_counter()
    work(head)
    return time.perf_counter() - start


def main() -> None:
    print(f"the guardian parses at most {FIELD_CHARS} characters of a From")
    print(f"{'From value':<34} {'whole (anchor)':>15} {'summary_of':>12} {'ratio':>8}")
    for size in (int(os.environ.get("BENCH_HEADER_BYTES", "32768")), FIELD_CHARS):
        for label, unit in SHAPES.items():
            value = (unit * (size // len(unit)))[:size - 9] + "x@y.onion"
            head = f"From: {value}\r\nSubject: s\r\n\r\n".encode()
            anchor, ours = seconds(whole_value_parsed, head), seconds(summary_of, head)
            print(f"{size:>6} B, {label:<25} {anchor:>13.3f} s {ours * 1000:>9.2f} ms "
                  f"{anchor / ours:>7.0f}x")


if __name__ == "__main__":
    main()
