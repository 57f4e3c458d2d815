"""Reading the header section alone (content/headers.py): what a large message costs."""

from __future__ import annotations

import pytest

from mssante.content.headers import (
    MAX_HEADER_SECTION,
    HeaderSyntaxError,
    header_section,
    read_headers,
)


def test_the_header_section_is_read_without_the_body() -> None:
    body = b"Subject: scan\r\nFrom: <a@x.mssante.fr>\r\n\r\n" + b"A" * 3_000_000
    assert header_section(body) == b"Subject: scan\r\nFrom: <a@x.mssante.fr>\r\n"
    assert read_headers(body, strict=True).subject == "scan"
    assert header_section(b"\r\nno headers") == b""
    assert header_section(b"Subject: only headers\r\n") == b"Subject: only headers\r\n"


def test_a_header_section_over_the_limit_is_refused_not_decoded() -> None:
    """A message without an empty line early on would be decoded whole as headers;
    a From hidden past the limit would escape the rules: refused (550 5.6.0)."""
    endless = b"X-Filler: " + b"y" * MAX_HEADER_SECTION + b"\r\nFrom: <boss@x.mssante.fr>\r\n"
    with pytest.raises(HeaderSyntaxError, match="header section longer than"):
        read_headers(endless, strict=True)
    assert read_headers(endless).from_mailboxes == ()  # lenient readers stop at the limit


def test_many_continuation_lines_are_joined_once() -> None:
    """A field folded over 250,000 lines (about 1 MB) is read whole, and read in one
    pass: the pieces are joined at the end, not copied line by line."""
    folded = b"Subject: x\r\n" + b" y\r\n" * 250_000 + b"From: <a@x.mssante.fr>\r\n\r\n"
    view = read_headers(folded, strict=True)
    assert view.subject is not None and view.subject.count("y") == 250_000
    assert [m.addr_spec for m in view.from_mailboxes] == ["a@x.mssante.fr"]


@pytest.mark.parametrize("line", ["\u00a0From: <a@x.mssante.fr>", "Fr om: <a@x.mssante.fr>",
                                  "not a field", ": no name"])
def test_a_line_that_is_not_a_field_is_refused_strictly_and_skipped_otherwise(
        line: str) -> None:
    head = f"Subject: s\r\n{line}\r\nFrom: <b@x.mssante.fr>\r\n\r\n".encode()
    with pytest.raises(HeaderSyntaxError, match="not a header field"):
        read_headers(head, strict=True)
    assert [m.addr_spec for m in read_headers(head).from_mailboxes] == ["b@x.mssante.fr"]


def test_obsolete_white_space_before_the_colon_is_a_field() -> None:
    view = read_headers(b"From : <a@x.mssante.fr>\r\n\r\n", strict=True)  # RFC 5322 §4.5.8
    assert [m.addr_spec for m in view.from_mailboxes] == ["a@x.mssante.fr"]


def test_a_first_line_that_continues_nothing_is_refused() -> None:
    with pytest.raises(HeaderSyntaxError, match="continuation line"):
        read_headers(b" <b@x.mssante.fr>\r\nFrom: <a@x.mssante.fr>\r\n\r\n", strict=True)
