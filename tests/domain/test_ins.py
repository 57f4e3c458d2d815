from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.domain.ins import (
    ins_key,
    make_ins,
    parse_patient_address,
    patient_address,
    validate_ins,
)
from mssante.errors import InvalidINS

nir = st.from_regex(r"\A[12][0-9]{2}(0[1-9]|1[0-2])[0-9]{8}\Z")


def test_reference_example() -> None:
    # MSSanté reference: 279035121518989, key = 97 - (NIR mod 97)
    assert validate_ins("279035121518989") == "279035121518989"
    assert ins_key("2790351215189") == 89
    assert str(patient_address("279035121518989")) == "279035121518989@patient.mssante.fr"


@given(nir)
def test_made_ins_validates(value: str) -> None:
    ins = make_ins(value)
    assert len(ins) == 15
    assert validate_ins(ins) == ins
    assert 1 <= int(ins[13:]) <= 97


@given(nir, st.integers(min_value=0, max_value=99))
def test_wrong_key_is_refused(value: str, key: int) -> None:
    good = make_ins(value)
    if int(good[13:]) == key:
        return
    with pytest.raises(InvalidINS, match="wrong INS key"):
        validate_ins(f"{value}{key:02d}")


@given(st.text(max_size=20))
def test_validator_never_crashes(text: str) -> None:
    with contextlib.suppress(InvalidINS):
        assert validate_ins(text) == text


def test_corsica() -> None:
    # sex 1, born 85-12, department 2A (counts as 19 for the key), commune 123, order 456
    ins = make_ins("185122A123456")
    assert ins_key("185122A123456") == 97 - (1851219123456 % 97)
    assert validate_ins(ins) == ins


@pytest.mark.parametrize("text", [
    "279035121518988@patient.mssante.fr",  # bad key
    "27903512151898@patient.mssante.fr",  # 14 digits
    "dupont@patient.mssante.fr",
    "279035121518989@ch-xyz.mssante.fr",  # not the patient domain
])
def test_bad_patient_addresses(text: str) -> None:
    with pytest.raises(InvalidINS):
        parse_patient_address(text)
