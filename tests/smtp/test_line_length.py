"""The DATA reader's measure of line lengths (RFC 5321 §4.5.3.1.6: at most 1000
octets, CRLF included), over data cut into chunks anywhere."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from mssante.smtp.protocol import MAX_LINE, _line_length


def _longest(data: bytes) -> int:
    """The longest line of ``data`` (LF included), read whole."""
    lines = data.split(b"\n")
    return max([len(line) + 1 for line in lines[:-1]] + [len(lines[-1])])


_LINE = st.integers(min_value=0, max_value=MAX_LINE + 2).map(lambda n: b"x" * n)


@given(lines=st.lists(_LINE, min_size=1, max_size=6), cuts=st.lists(
    st.integers(min_value=0, max_value=6 * (MAX_LINE + 3)), max_size=5))
def test_chunks_give_the_verdict_of_the_whole(lines: list[bytes], cuts: list[int]) -> None:
    data = b"\n".join(lines)
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    carried = 0
    for start, end in itertools.pairwise(bounds):
        carried = _line_length(data[start:end], carried)
    too_long = _longest(data) > MAX_LINE
    # an unfinished last line of MAX_LINE octets can no longer end within the limit
    too_long = too_long or len(lines[-1]) >= MAX_LINE
    assert (carried < 0) == too_long
    if carried >= 0:
        assert carried == len(lines[-1])


def test_a_line_of_exactly_the_limit_passes_and_one_more_octet_does_not() -> None:
    assert _line_length(b"x" * (MAX_LINE - 1) + b"\n", 0) == 0
    assert _line_length(b"x" * MAX_LINE + b"\n", 0) == -1
    assert _line_length(b"x" * 10 + b"\nabc", MAX_LINE - 11) == 3
    assert _line_length(b"x" * 10 + b"\nabc", MAX_LINE - 10) == -1
    assert _line_length(b"abc", -1) == -1
