"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.imap import mutf7

VECTORS = [
    ("INBOX", b"INBOX"),
    ("", b""),
    ("&", b"&-"),
    ("R&D/&&", b"R&-D/&-&-"),
    ("Entwürfe", b"Entw&APw-rfe"),
    ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501 §5.1.3
    ("Éléments envoyés", b"&AMk-l&AOk-ments envoy&AOk-s"),
    ("📬", b"&2D3c7A-"),  # outside the BMP: a surrogate pair
    ("tab\there", b"tab&AAk-here"),
    ("~!#$%'()*+,-./:;<=>?@[\\]^_`{|}", b"~!#$%'()*+,-./:;<=>?@[\\]^_`{|}"),
]


@pytest.mark.parametrize("name,encoded", VECTORS)
def test_vectors_both_ways(name: str, encoded: bytes) -> None:
    assert mutf7.encode(name) == encoded
    assert mutf7.decode(encoded) == name
    assert mutf7.decode(encoded.decode("ascii")) == name


def test_adjacent_base64_runs_are_accepted() -> None:
    assert mutf7.decode(b"&AOk-&AOk-") == "éé"


@pytest.mark.parametrize("encoded,message", [
    (b"Entw\xc3\xbcrfe", "8-bit"),
    ("Entwürfe", "8-bit"),
    (b"tab\there", "control"),
    (b"a\x7fb", "control"),
    (b"Entw&APw", "closing"),
    (b"&", "closing"),
    (b"&A/w-", "base64"),
    (b"&A=w-", "base64"),
    (b"&A-", "length"),
    (b"&APx-", "padding"),  # leftover bits not zero
    (b"&AOkA-", "odd number"),  # three octets: one and a half UTF-16 units
    (b"&AO-", "padding"),  # leftover bits
    (b"&2D0-", "UTF-16"),  # a lone high surrogate
    (b"&AGE-", "printable"),  # "a" in base64
    (b"&ACY-", "printable"),  # "&" in base64
])
def test_what_is_not_modified_utf7(encoded: bytes | str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mutf7.decode(encoded)


def test_a_lone_surrogate_cannot_be_encoded() -> None:
    with pytest.raises(ValueError):
        mutf7.encode("\udcff")


names = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)


@given(names)
def test_round_trip(name: str) -> None:
    encoded = mutf7.encode(name)
    assert all(0x20 <= c < 0x7F for c in encoded)
    assert mutf7.decode(encoded) == name


@given(st.binary(max_size=40))
def test_decode_raises_only_value_error(data: bytes) -> None:
    try:
        name = mutf7.decode(data)
    except ValueError:
        return
    # what decodes is canonical unless it joins two base64 runs
    if b"-&" not in data:
        assert mutf7.encode(name) == data
