"""The MIME structure of a stored message (content/mime.py), as IMAP and the web read it."""

from __future__ import annotations

import pytest

from mssante.content.headers import MAX_HEADER_SECTION
from mssante.content.mime import (
    Entity,
    charset_decode,
    decode_transfer,
    decoded_size,
    incremental_decoder,
)


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


@pytest.mark.parametrize("blank", [b"", b"\r\n"])
def test_a_header_section_past_its_limit_ends_there(blank: bytes) -> None:
    """25 MB of header fields would be millions of fields for every reader: the header
    ends at the first line past MAX_HEADER_SECTION, the rest is body."""
    field = b"X-Filler: 0123456789\r\n"
    raw = b"Subject: s\r\n" + field * (2 * MAX_HEADER_SECTION // len(field)) + blank + b"end"
    root = Entity(raw, 0, len(raw))
    assert MAX_HEADER_SECTION <= root.body_start < MAX_HEADER_SECTION + len(field)
    assert root.get("subject") == "s"
    assert root.body.endswith(b"end") and root.blank == 0


def test_a_header_within_the_limit_is_whole() -> None:
    raw = b"X: " + b"y" * (MAX_HEADER_SECTION - 100) + b"\r\n\r\nbody"
    root = Entity(raw, 0, len(raw))
    assert root.body == b"body" and root.blank == 2


@pytest.mark.parametrize(("data", "encoding"), [
    (b"", "base64"), (b"QQ==", "base64"), (b"QUI=\r\n", "base64"), (b"QUJD\r\nREVG", "base64"),
    (b"caf=C3=A9=\r\nx", "quoted-printable"), (b"raw\xff", "8bit"), (b"x", "7bit"),
])
def test_decoded_size(data: bytes, encoding: str) -> None:
    assert decoded_size(data, encoding) == len(decode_transfer(data, encoding))
