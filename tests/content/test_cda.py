"""The CDA R2 header as the CI-SIS structures it, read from the example documents, and
the documents refused for what they lack or what they hide."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.content.xdmtools import BIOLOGY_N1, CONSULTATION

from mssante.content.cda import hl7_time, read_cda
from mssante.errors import DocumentRefused


def test_consultation_report_header() -> None:
    header = read_cda(CONSULTATION)
    assert header.code.code == "11488-4"
    assert header.code.scheme == "2.16.840.1.113883.6.1"  # LOINC
    assert header.title == "Compte rendu de consultation de cardiologie"
    assert header.effective_time == "20261203143000+0100"
    assert header.confidentiality.code == "N"
    assert header.language == "fr-FR"
    assert header.unique_id == "1.2.250.1.213.4.1.1.9999.1^CR-2026-000417"
    patient = header.patient
    assert (patient.ins, patient.ins_oid) == ("279035121518989", "1.2.250.1.213.1.4.10")
    assert patient.other_ids == (("000417523", "1.2.250.1.213.4.1.1.9999.3"),)
    assert (patient.birth_name, patient.given_name, patient.birth_date, patient.sex) == (
        "PAT-TROIS", "DOMINIQUE", "19790328", "F")
    assert patient.qualified
    assert header.author is not None
    assert (header.author.id, header.author.family_name, header.author.given_name) == (
        "810102727017", "DUPONT", "Paul")
    assert header.author_institution is not None
    assert header.author_institution.id == "1750000001"
    assert header.practice_setting is not None and header.practice_setting.code == "ETABLISSEMENT"
    assert header.facility_type is not None and header.facility_type.code == "SA01"
    assert header.service_start == "20261203140000+0100"
    assert header.body_media_type is None


def test_document_with_a_pdf_body_and_an_unqualified_ins() -> None:
    header = read_cda(BIOLOGY_N1)
    assert header.body_media_type == "application/pdf"
    assert header.patient.ins == "185079935012361"
    assert not header.patient.qualified  # no birth date: three traits of four
    assert header.practice_setting is None and header.facility_type is None


def test_wrong_ins_key_refused() -> None:
    wrong = CONSULTATION.replace(b'extension="279035121518989"', b'extension="279035121518988"')
    with pytest.raises(DocumentRefused, match="wrong INS key"):
        read_cda(wrong)


def test_two_patients_refused() -> None:
    start = CONSULTATION.index(b"<recordTarget>")
    end = CONSULTATION.index(b"</recordTarget>") + len(b"</recordTarget>")
    twice = CONSULTATION[:end] + CONSULTATION[start:end] + CONSULTATION[end:]
    with pytest.raises(DocumentRefused, match="2 patients"):
        read_cda(twice)


def test_not_a_cda_refused() -> None:
    with pytest.raises(DocumentRefused, match="not a CDA R2 document"):
        read_cda(b'<ClinicalDocument xmlns="urn:hl7-org:v2"/>')


def test_every_missing_field_is_named() -> None:
    bare = b'<ClinicalDocument xmlns="urn:hl7-org:v3"><effectiveTime value="2026x"/>' \
           b"</ClinicalDocument>"
    with pytest.raises(DocumentRefused) as caught:
        read_cda(bare)
    reasons = " | ".join(caught.value.reasons)
    for words in ("no document id", "no document code", "not an HL7 date", "0 patients"):
        assert words in reasons


def test_xxe_refused() -> None:
    hostile = CONSULTATION.replace(
        b"<?xml-stylesheet",
        b'<!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        b"<?xml-stylesheet", 1).replace(b"<title>", b"<title>&x;", 1)
    with pytest.raises(DocumentRefused, match="DTD"):
        read_cda(hostile)


def test_billion_laughs_refused() -> None:
    entities = b'<!ENTITY a "ha">' + b"".join(
        b'<!ENTITY %s "%s">' % (bytes([98 + n]), (b"&" + bytes([97 + n]) + b";") * 10)
        for n in range(9))
    hostile = b'<?xml version="1.0"?><!DOCTYPE ClinicalDocument [' + entities + b"]>" \
        + CONSULTATION.split(b"?>", 2)[2].replace(b"<title>", b"<title>&j;", 1)
    with pytest.raises(DocumentRefused, match="DTD"):
        read_cda(hostile)


def test_external_dtd_is_never_fetched() -> None:
    hostile = b'<?xml version="1.0"?><!DOCTYPE ClinicalDocument SYSTEM ' \
              b'"http://127.0.0.1:9/cda.dtd">' + CONSULTATION.split(b"?>", 2)[2]
    with pytest.raises(DocumentRefused, match="DTD"):
        read_cda(hostile)


def test_malformed_xml_refused() -> None:
    with pytest.raises(DocumentRefused, match="not well-formed XML"):
        read_cda(CONSULTATION[:-40])


@pytest.mark.parametrize(("value", "expected"), [
    ("20261203143000+0100", "20261203133000"),
    ("20261203143000.123-0500", "20261203193000"),
    ("20261203143000", "20261203143000"),
    ("202612031430", "202612031430"),
    ("20261203", "20261203"),
    ("2026", "2026"),
    ("20260101003000+0100", "20251231233000"),
    ("20261340", None),
    ("2026-12-03", None),
    ("", None),
])
def test_hl7_time_to_xds_utc(value: str, expected: str | None) -> None:
    assert hl7_time(value) == expected


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_cda_is_read_or_refused_never_crashes(data: st.DataObject) -> None:
    document = bytearray(CONSULTATION)
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(document) - 1))
        chunk = data.draw(st.sampled_from([b"<", b">", b"&", b"<!DOCTYPE x>", b'"', b"\x00",
                                           b"]]>", b"<?x?>", b"\xff", b"&x;", b""]))
        document[at:at + data.draw(st.integers(0, 3))] = chunk
    try:
        header = read_cda(bytes(document))
    except DocumentRefused as exc:
        assert exc.reasons
    else:
        assert header.code.code
