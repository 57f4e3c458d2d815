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
