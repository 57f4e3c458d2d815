"""The rules MSSanté adds to a message carrying clinical documents."""

from __future__ import annotations

import pytest

from mssante.domain.documents import (
    codecda_value,
    document_subject,
    ins_value,
    integration_failure,
)
from mssante.domain.ins import (
    INS_NIR_OID,
    INS_NIR_TEST_OID,
    is_ins_oid,
    is_qualified_ins,
)
from mssante.errors import PolicyViolation


def test_codecda_is_comma_separated_and_absent_without_cda() -> None:
    # Réf#2 §3.8.1 examples
    assert codecda_value(["34112-3"]) == "34112-3"
    assert codecda_value(["34112-3", "PRESC-BIO", "15508-5"]) == "34112-3,PRESC-BIO,15508-5"
    assert codecda_value([]) is None


@pytest.mark.parametrize("code", ["a,b", "11488 4", "", "x\r\nBcc: evil@example.org"])
def test_codecda_refuses_what_would_split_or_inject(code: str) -> None:
    with pytest.raises(PolicyViolation):
        codecda_value([code])


def test_ins_header() -> None:
    assert ins_value(True, True) == "O"
    assert ins_value(True, False) == "N"
    assert ins_value(False, True) is None


def test_subject() -> None:
    assert document_subject("Compte rendu de consultation", "Pat-Trois", "Dominique",
                            "28/03/1979") == \
        "XDM/1.0/DDM+Compte rendu de consultation PAT-TROIS Dominique 28/03/1979"
    with pytest.raises(PolicyViolation):
        document_subject("CR\r\nBcc: x@example.org", "A", "B", "01/01/2000")
    with pytest.raises(PolicyViolation):
        document_subject(" ", "A", "B", "01/01/2000")


def test_ins_authorities() -> None:
    assert is_ins_oid(INS_NIR_OID) and is_ins_oid("1.2.250.1.213.1.4.9")
    assert is_ins_oid(INS_NIR_TEST_OID) and is_ins_oid("1.2.250.1.213.1.4.11")
    assert not is_ins_oid("1.2.250.1.213.1.4.2")


def test_qualified_ins_needs_the_matricule_its_oid_and_four_traits() -> None:
    traits = {"birth_name": "PAT-TROIS", "first_given_name": "DOMINIQUE",
              "birth_date": "19790328", "sex": "F"}
    assert is_qualified_ins("279035121518989", INS_NIR_OID, **traits)
    assert not is_qualified_ins("279035121518988", INS_NIR_OID, **traits)  # key
    assert not is_qualified_ins("279035121518989", "1.2.3", **traits)
    assert not is_qualified_ins(None, INS_NIR_OID, **traits)
    for missing in traits:
        assert not is_qualified_ins("279035121518989", INS_NIR_OID,
                                    **{**traits, missing: " "})


def test_an_integration_receipts_error_is_read_with_its_code_and_label() -> None:
    # the modifier of processed/Error: <code>^<label>, the label in ASCII on the wire
    assert integration_failure("Error: 904^INS incoherent") == (904, "INS incohérent")
    assert integration_failure("automatic-action/MDN-sent-automatically; "
                               "processed/Error: 902^Patient inconnu") == (902,
                                                                          "Patient inconnu")
    assert integration_failure("Error: 999^Autre chose") == (999, "Autre chose")
    assert integration_failure("") is None
    assert integration_failure("automatic-action/MDN-sent-automatically; processed") is None
