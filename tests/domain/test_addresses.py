from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.domain.addresses import is_trust_space_domain, parse_address
from mssante.errors import InvalidAddress

atom = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~-", min_size=1,
               max_size=12)
label = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\Z")


@given(local=st.lists(atom, min_size=1, max_size=3).map(".".join),
       labels=st.lists(label, min_size=2, max_size=4))
def test_valid_addresses_round_trip(local: str, labels: list[str]) -> None:
    domain = ".".join(labels)
    text = f"{local}@{domain.upper()}"
    address = parse_address(text)
    assert address.local == local
    assert address.domain == domain  # lower-cased
    assert str(parse_address(str(address))) == str(address)
    assert parse_address(f"<{text}>") == address


@given(st.text(max_size=80))
def test_parser_never_crashes(text: str) -> None:
    try:
        address = parse_address(text)
    except InvalidAddress:
        return
    assert "@" in str(address)
    assert address.domain == address.domain.lower()


@pytest.mark.parametrize("text", [
    "", "no-at-sign", "@ch-xyz.mssante.fr", "dupont@", "a..b@x.fr", ".a@x.fr", "a.@x.fr",
    "dupont@localhost", "dupont@-bad.fr", "dup ont@x.fr", '"quoted"@x.fr',
    "x" * 65 + "@x.fr", "a@" + "b" * 64 + ".fr",
])
def test_invalid_addresses(text: str) -> None:
    with pytest.raises(InvalidAddress):
        parse_address(text)


def test_trust_space_namespace() -> None:
    assert is_trust_space_domain("ch-xyz.mssante.fr")
    assert is_trust_space_domain("MSSANTE.FR")
    assert not is_trust_space_domain("gmail.com")
    assert not is_trust_space_domain("evilmssante.fr")
    assert parse_address("dupont@ch-xyz.mssante.fr").in_trust_space_namespace
    assert not parse_address("someone@gmail.com").in_trust_space_namespace
