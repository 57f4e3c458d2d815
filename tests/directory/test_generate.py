"""Generated extract rows: deterministic, unique and valid addresses, the national mix."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.directory.extract import ExtractRow, format_row
from mssante.directory.generate import (
    CITIES,
    FAMILY_NAMES,
    GIVEN_NAMES,
    TYPE_MIX,
    ascii_slug,
    generate_rows,
    luhn_key,
)
from mssante.domain.addresses import parse_address
from mssante.domain.mailboxes import MailboxType

COUNT = 20_000


@pytest.fixture(scope="module")
def rows() -> list[ExtractRow]:
    return list(generate_rows(COUNT, seed=42))


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value // 10 + value % 10
    return total % 10 == 0


def test_same_seed_same_rows() -> None:
    assert list(generate_rows(1500, seed=7)) == list(generate_rows(1500, seed=7))


def test_other_seed_other_rows() -> None:
    assert list(generate_rows(200, seed=7)) != list(generate_rows(200, seed=8))


def test_count() -> None:
    assert list(generate_rows(0)) == []
    assert len(list(generate_rows(123))) == 123
    with pytest.raises(ValueError):
        list(generate_rows(-1))


def test_addresses_unique_and_valid(rows: list[ExtractRow]) -> None:
    addresses = [row.address for row in rows]
    assert len(set(addresses)) == COUNT
    for address in addresses:
        parsed = parse_address(address)
        assert parsed.in_trust_space_namespace and not parsed.is_patient
        assert address == address.lower()
        assert re.fullmatch(r"[a-z0-9.-]+@[a-z0-9.-]+\.mssante\.fr", address), address


def test_every_row_can_be_written(rows: list[ExtractRow]) -> None:
    for row in rows:
        format_row(row)


def test_type_mix(rows: list[ExtractRow]) -> None:
    counts = Counter(row.mailbox_type for row in rows)
    tolerance = {MailboxType.PER: 0.015, MailboxType.ORG: 0.015, MailboxType.APP: 0.008,
                 MailboxType.CAB: 0.004}
    for mailbox_type, share in TYPE_MIX:
        assert abs(counts[mailbox_type] / COUNT - share) < tolerance[mailbox_type], counts


def test_identifiers(rows: list[ExtractRow]) -> None:
    rpps_seen: set[str] = set()
    for row in rows:
        if row.mailbox_type in (MailboxType.PER, MailboxType.CAB):
            assert row.pp_id_type == "8"
            assert re.fullmatch(r"\d{11}", row.pp_id) and luhn_valid(row.pp_id)
            assert row.pp_national_id == "8" + row.pp_id
            assert row.pp_id not in rpps_seen
            rpps_seen.add(row.pp_id)
            assert row.family_name in FAMILY_NAMES and row.given_name in GIVEN_NAMES
            assert (row.profession_category, row.profession_category_label) == ("C", "Civil")
            assert row.profession_code in {"10", "21", "40", "50", "60", "70", "80", "91", "92"}
            assert bool(row.skill_code) == (row.profession_code == "10")
        else:
            assert row.pp_id == row.pp_national_id == row.family_name == ""
            assert row.service
        assert (row.structure_id_type, row.structure_id[:1]) in {("1", "1"), ("3", "3")}
        if row.structure_id_type == "1":
            assert re.fullmatch(r"1\d{9}", row.structure_id)
        else:
            assert re.fullmatch(r"3\d{14}", row.structure_id)
            assert luhn_valid(row.structure_id[1:])


def test_places_are_consistent(rows: list[ExtractRow]) -> None:
    by_department = {city.department: city for city in CITIES}
    postal_codes = {code for city in CITIES for code in city.postal_codes}
    for row in rows[:2000]:
        assert row.department in by_department
        assert row.postal_code in postal_codes
        assert row.routing_line.startswith(row.postal_code + " ")
        assert row.country == "FRANCE"
        assert row.legal_name


def test_medecin_specialties_present(rows: list[ExtractRow]) -> None:
    skills = Counter(row.skill_code for row in rows if row.profession_code == "10")
    assert skills.most_common(1)[0][0] == "SM26"
    assert "SM04" in skills


def test_names_lists_are_realistic() -> None:
    assert len(set(FAMILY_NAMES)) >= 150 and len(set(GIVEN_NAMES)) >= 120
    assert "Lefèvre" in FAMILY_NAMES and "Hélène" in GIVEN_NAMES
    assert len(CITIES) >= 60


def test_ascii_slug() -> None:
    assert ascii_slug("Hélène") == "helene"
    assert ascii_slug("D'Almeida") == "d-almeida"
    assert ascii_slug("Le Gall") == "le-gall"
    assert ascii_slug("Pointe-à-Pitre") == "pointe-a-pitre"


def test_luhn_key_known_value() -> None:
    assert luhn_key("7992739871") == "3"  # the classic worked example


@given(st.text(alphabet="0123456789", min_size=1, max_size=20))
def test_luhn_key_makes_valid_numbers(digits: str) -> None:
    assert luhn_valid(digits + luhn_key(digits))
