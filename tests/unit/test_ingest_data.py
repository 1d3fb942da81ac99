"""DataPhase reads DATA in blocks exactly as a line-by-line reader (aiosmtpd's rules) would:
same content, same end, same bytes left for the next command, a refusal in the same cases."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from onionpost.ingest.data import DataPhase
from onionpost.ingest.replies import LINE_TOO_LONG as TOO_LONG
from onionpost.ingest.replies import TOO_MUCH_DATA as TOO_MUCH

LINE_LIMIT = 40
SIZE_LIMIT = 300


def line_by_line(stream: bytes) -> tuple[bytes, bytes, str | None] | None:
    """The reference: split at CRLF, stop at '.', unstuff; None if the end never comes."""
    content: list[bytes] = []
    size, error, position = 0, None, 0
    while True:
        end = stream.find(b"\r\n", position)
        if end < 0:
            return None
        line = stream[position:end + 2]
        position = end + 2
        if line == b".\r\n":
            return (b"" if error else b"".join(content)), stream[position:], error
        size += len(line)
        if error is None and size > SIZE_LIMIT:
            error = TOO_MUCH
        elif error is None and len(line) > LINE_LIMIT:
            error = TOO_LONG
        content.append(line[1:] if line.startswith(b".") else line)


def in_blocks(stream: bytes, cuts: list[int],
              drains: list[bool]) -> tuple[DataPhase, bytes, bytes]:
    """Feed the stream cut at `cuts`, taking the content away after the blocks `drains`
    says (as ingest spills it to disk); the phase, what it left unread plus its surplus,
    and the whole content taken."""
    phase = DataPhase(SIZE_LIMIT, LINE_LIMIT)
    start, taken = 0, []
    for number, cut in enumerate([*sorted(set(cuts)), len(stream)]):
        done = phase.feed(stream[start:cut])
        if drains[number % len(drains)] or done:
            assert phase.buffered == sum(map(len, phase.parts))
            taken += phase.drain()
        if done:
            return phase, phase.surplus + stream[cut:], b"".join(taken)
        start = cut
    return phase, b"", b"".join(taken)


PIECES = st.sampled_from([b"\r\n", b".", b"..", b"\r", b"\n", b"a", b"text ", b".\r\n",
                          b"\r\n.\r\n", b"\n.\n", b"\r.\r", b"x" * 45, b"MAIL FROM:<a@b>\r\n"])
STREAMS = st.lists(PIECES, max_size=60).map(b"".join)


@settings(max_examples=1500)
@given(STREAMS, st.lists(st.integers(0, 800), max_size=12),
       st.lists(st.booleans(), min_size=1, max_size=12))
@example(b".\r\nQUIT\r\n", [], [True, False])
@example(b"..\r\n.\r\n", [1, 2, 3], [True, False])
@example(b"a\r\n.\r\nQUIT\r\n", [4, 5], [True, False])
@example(b"a\n.\nb\r.\rc\r\n.\r\n", [], [True, False])
@example(b"x" * 100 + b"\r\n.\r\n", [10, 50, 101], [True, False])
def test_blocks_read_as_lines_do(stream: bytes, cuts: list[int], drains: list[bool]) -> None:
    expected = line_by_line(stream)
    phase, left, taken = in_blocks(stream, [cut for cut in cuts if cut <= len(stream)],
                                   drains)
    if expected is None:
        assert not phase.done
        return
    content, rest, error = expected
    assert phase.done
    assert left == rest
    assert (phase.error is None) == (error is None)
    if error is None:
        assert taken == content


def test_a_long_unfinished_line_is_not_kept() -> None:
    phase = DataPhase(None, LINE_LIMIT)
    for _ in range(1000):
        assert not phase.feed(b"y" * 1000)
    assert phase.error == TOO_LONG
    assert len(phase._line) <= 2
    assert phase.feed(b"\r\n.\r\nNEXT")
    assert phase.surplus == b"NEXT"
