"""Charsets of a stored message's parts (content/mime.py), as IMAP SEARCH and the web read them."""

from __future__ import annotations

import pytest

from mssante.content.mime import charset_decode, incremental_decoder


@pytest.mark.parametrize("charset", ["punycode", "idna", "unicode_escape", "raw-unicode-escape",
                                     "x-unknown", "base64_codec", "", "\x00"])
def test_a_charset_that_is_no_mail_charset_is_read_as_utf8(charset: str) -> None:
    """punycode's decoder is quadratic (a hostile 2 MB part would hold a worker for
    minutes); escape codecs do not read characters; unknown names are not codecs."""
    data = "café \\u0041 a-b".encode()
    assert charset_decode(data, charset) == "café \\u0041 a-b"
    decoder = incremental_decoder(charset)
    assert decoder.decode(data[:4]) + decoder.decode(data[4:], final=True) == "café \\u0041 a-b"


@pytest.mark.parametrize(("charset", "data", "text"), [
    ("iso-8859-1", "été".encode("latin-1"), "été"),
    ("ISO_8859-15", "€".encode("iso-8859-15"), "€"),
    ("windows-1252", "“x”".encode("cp1252"), "“x”"),
    ("utf-7", "é".encode("utf-7"), "é"),
    ("utf-8", b"\xff ok", "\ufffd ok"),
])
def test_mail_charsets_are_decoded(charset: str, data: bytes, text: str) -> None:
    assert charset_decode(data, charset) == text
