"""IHE XDM archives: built from the example CDA, read back, and every hostile archive
refused with its reason (each threat a test of its own)."""

from __future__ import annotations

import io
import stat
import zipfile
import zlib
from pathlib import Path

import pytest
from lxml import etree
from tests.content.xdmtools import (
    BIOLOGY_N1,
    CDA,
    CONSULTATION,
    CONSULTATION_PDF,
    METADATA,
    PDF,
    encrypted,
    fix_metadata,
    lying_size,
    members,
    overlapping,
    rezip,
    valid_archive,
    with_document,
    zip_of,
)

from mssante.content.cda import Code
from mssante.content.xdm import (
    DE_CLASS,
    DE_FORMAT,
    DE_PATIENT_ID,
    DEFAULT_LIMITS,
    HAS_MEMBER,
    LCM,
    RIM,
    SS_PATIENT_ID,
    SUBMISSION_SET,
    Limits,
    SourceDocument,
    build,
    check,
)
from mssante.content.xdmfiles import extract, safe_name
from mssante.errors import DocumentRefused

NS = {"rim": RIM, "lcm": LCM}


def refusal(archive: bytes, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    with pytest.raises(DocumentRefused) as caught:
        check(archive, limits)
    return list(caught.value.reasons)


def one_reason_with(archive: bytes, *words: str, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    reasons = refusal(archive, limits)
    assert any(all(w in r for w in words) for r in reasons), reasons
    return reasons


# --- building ----------------------------------------------------------------------


def test_layout_is_the_ans_one() -> None:
    names = list(members(valid_archive()))
    assert names == ["README.TXT", "INDEX.HTM", METADATA, CDA, PDF]


def test_metadata_is_a_submit_objects_request_with_the_patient_and_author() -> None:
    root = etree.fromstring(members(valid_archive())[METADATA])
    assert root.tag == f"{{{LCM}}}SubmitObjectsRequest"
    package = root.find(".//rim:RegistryPackage", NS)
    assert package is not None
    ss_id = package.get("id")
    node = root.find(f"rim:RegistryObjectList/rim:Classification"
                     f"[@classificationNode='{SUBMISSION_SET}']", NS)
    assert node is not None and node.get("classifiedObject") == ss_id
    patient = package.find(f"rim:ExternalIdentifier[@identificationScheme='{SS_PATIENT_ID}']",
                           NS)
    assert patient is not None
    assert patient.get("value") == "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
    author = package.findtext(".//rim:Slot[@name='authorPerson']/rim:ValueList/rim:Value",
                              namespaces=NS)
    assert author == "810102727017^DUPONT^Paul^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    entries = root.findall(".//rim:ExtrinsicObject", NS)
    assert [e.get("mimeType") for e in entries] == ["text/xml", "application/pdf"]
    associations = root.findall(".//rim:Association", NS)
    assert {a.get("targetObject") for a in associations} == {e.get("id") for e in entries}
    assert all(a.get("associationType") == HAS_MEMBER and a.get("sourceObject") == ss_id
               for a in associations)


def _slot(entry: etree._Element, name: str) -> list[str]:
    return [v.text or "" for v in entry.iterfind(
        f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value", NS)]


def _classification(entry: etree._Element, scheme: str) -> str | None:
    found = entry.find(f"rim:Classification[@classificationScheme='{scheme}']", NS)
    return None if found is None else found.get("nodeRepresentation")


def test_document_entry_carries_the_cda_header() -> None:
    files = members(valid_archive())
    root = etree.fromstring(files[METADATA])
    cda = root.findall(".//rim:ExtrinsicObject", NS)[0]
    assert _slot(cda, "creationTime") == ["20261203133000"]  # +0100 made UTC
    assert _slot(cda, "languageCode") == ["fr-FR"]
    assert _slot(cda, "URI") == ["DOC0001.XML"]
    assert _slot(cda, "size") == [str(len(CONSULTATION))]
    assert _slot(cda, "sourcePatientId") == ["000417523^^^&1.2.250.1.213.4.1.1.9999.3&ISO^PI"]
    assert _slot(cda, "sourcePatientInfo") == [
        "PID-5|PAT-TROIS^DOMINIQUE^^^^^L", "PID-7|19790328", "PID-8|F"]
    assert _slot(cda, "serviceStartTime") == ["20261203130000"]
    assert _classification(cda, DE_CLASS) == "10"
    assert _classification(cda, DE_FORMAT) == "urn:ihe:iti:xds:2017:mimeTypeSufficient"
    for scheme, code in (("urn:uuid:f0306f51-975f-434e-a61c-c59651d33983", "11488-4"),
                         ("urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f", "N"),
                         ("urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead", "ETABLISSEMENT"),
                         ("urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1", "SA01")):
        assert _classification(cda, scheme) == code
    patient = cda.find(f"rim:ExternalIdentifier[@identificationScheme='{DE_PATIENT_ID}']", NS)
    assert patient is not None
    assert patient.get("value") == "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"


def test_non_structured_body_gets_its_format_code() -> None:
    root = etree.fromstring(members(build([SourceDocument(BIOLOGY_N1)]))[METADATA])
    entry = root.find(".//rim:ExtrinsicObject", NS)
    assert entry is not None
    assert _classification(entry, DE_FORMAT) == "urn:ihe:iti:xds-sd:pdf:2008"


def test_readme_and_index() -> None:
    files = members(valid_archive())
    readme = files["README.TXT"].decode()
    assert "Dr Paul DUPONT, CENTRE HOSPITALIER XYZ" in readme
    assert "IHE_XDM/SUBSET01/DOC0001.XML" in readme
    index = etree.fromstring(files["INDEX.HTM"])  # well-formed XHTML
    links = [a.get("href") for a in index.iter("{http://www.w3.org/1999/xhtml}a")]
    assert links == ["IHE_XDM/SUBSET01/DOC0001.XML", "IHE_XDM/SUBSET01/DOC0002.PDF",
                     METADATA]


def test_two_patients_cannot_share_an_archive() -> None:
    with pytest.raises(DocumentRefused) as caught:
        build([SourceDocument(CONSULTATION), SourceDocument(BIOLOGY_N1)])
    assert "one patient" in str(caught.value)


def test_unknown_document_type_needs_a_class_code() -> None:
    other = CONSULTATION.replace(b'code="11488-4"', b'code="57833-6"')
    with pytest.raises(DocumentRefused, match="no class code known for document type 57833-6"):
        build([SourceDocument(other)])
    archive = build([SourceDocument(other, class_code=Code("16", "1.2.250.1.213.1.1.4.1",
                                                           "Prescription"))])
    assert check(archive).documents[0].cda is not None


def test_a_cda_without_code_or_patient_is_refused_at_build() -> None:
    broken = CONSULTATION.replace(b'<code code="11488-4"', b'<xcode code="11488-4"') \
        .replace(b"<recordTarget>", b"<recordTargetX>").replace(b"</recordTarget>",
                                                                b"</recordTargetX>")
    with pytest.raises(DocumentRefused) as caught:
        build([SourceDocument(broken)])
    assert any("no document code" in r for r in caught.value.reasons)
    assert any("0 patients" in r for r in caught.value.reasons)


# --- reading back ------------------------------------------------------------------


def test_round_trip() -> None:
    checked = check(valid_archive())
    assert checked.patient_ins == "279035121518989"
    assert checked.patient_oid == "1.2.250.1.213.1.4.10"
    assert [(d.name, d.mime_type, d.size) for d in checked.documents] == [
        (CDA, "text/xml", len(CONSULTATION)), (PDF, "application/pdf", len(CONSULTATION_PDF))]
    assert checked.documents[0].data == CONSULTATION
    assert checked.documents[0].cda is not None
    assert checked.documents[0].cda.code.code == "11488-4"
    assert checked.warnings == ()
    assert set(checked.as_json()) >= {"patient_ins", "documents"}
    assert set(checked.as_json()["documents"][0]) >= {"name", "mime_type", "sha1", "size"}


def test_other_subset_name_and_lower_case_uri_accepted() -> None:
    files = members(valid_archive())
    moved = {name.replace("SUBSET01", "SS000001"): data for name, data in files.items()}
    assert check(rezip(moved)).documents[0].name == "IHE_XDM/SS000001/DOC0001.XML"


def test_missing_readme_is_a_warning_only() -> None:
    files = members(valid_archive())
    del files["README.TXT"]
    assert check(rezip(files)).warnings == ("no README.TXT at the archive's root "
                                            "(IHE ITI TF-1 §16)",)


# --- hostile archives ----------------------------------------------------------------


def test_not_a_zip_refused() -> None:
    one_reason_with(b"%PDF-1.4 hello", "not a ZIP archive")
    one_reason_with(valid_archive()[:200], "not a ZIP archive")


def test_archive_too_large_refused() -> None:
    one_reason_with(valid_archive(), "more than 1000", limits=Limits(archive=1000))


def test_zip_bomb_refused() -> None:
    bomb = zip_of([("IHE_XDM/SUBSET01/DOC0001.XML", bytes(40 * 1024 * 1024))])
    assert len(bomb) < 100_000
    one_reason_with(bomb, "zip bomb")


def test_zip_bomb_by_ratio_refused() -> None:
    bomb = zip_of([("IHE_XDM/SUBSET01/DOC0001.XML", bytes(3 * 1024 * 1024))])
    one_reason_with(bomb, "compression ratio over 200:1", "zip bomb")


def test_zip_bomb_by_total_size_refused() -> None:
    many = zip_of([(f"IHE_XDM/SUBSET01/DOC{n:04d}.XML", bytes(400_000)) for n in range(4)])
    one_reason_with(many, "in all", "zip bomb", limits=Limits(total=1_000_000, ratio=10**6))


def test_zip_bomb_with_lying_header_sizes_refused() -> None:
    """The sizes a header claims are not what is counted: a member that claims 100
    octets but inflates to 40 MB is refused without being inflated whole."""
    bomb = lying_size(zip_of([("IHE_XDM/SUBSET01/DOC0001.XML", bytes(40 * 1024 * 1024))]),
                      "IHE_XDM/SUBSET01/DOC0001.XML", 100)
    reasons = refusal(bomb)
    assert any("cannot be read" in r or "zip bomb" in r for r in reasons), reasons


def test_lying_small_size_does_not_hide_a_big_member() -> None:
    big = lying_size(zip_of([("A.TXT", bytes(2 * 1024 * 1024))]), "A.TXT", 10 ** 9)
    one_reason_with(big, "zip bomb")


def test_overlapping_entries_refused() -> None:
    archive = overlapping(valid_archive(), "README.TXT", "READMF.TXT")
    one_reason_with(archive, "share their data", "overlapping")


def test_too_many_entries_refused() -> None:
    archive = zip_of([(f"F{n}.TXT", b"x") for n in range(201)])
    one_reason_with(archive, "201 entries, more than 200")


def test_path_traversal_refused() -> None:
    reasons = one_reason_with(zip_of([("IHE_XDM/SUBSET01/../../../evil.sh", b"x"),
                                      ("../up.txt", b"y")]), "path traversal")
    assert len([r for r in reasons if "path traversal" in r]) == 2


def test_absolute_name_refused() -> None:
    one_reason_with(zip_of([("/etc/cron.d/evil", b"x")]), "absolute entry name")


def test_backslash_name_refused() -> None:
    one_reason_with(zip_of([("IHE_XDM\\SUBSET01\\DOC0001.XML", b"x")]), "backslash")


def test_drive_letter_refused() -> None:
    one_reason_with(zip_of([("C:/Windows/evil.dll", b"x")]), "drive letter")
    one_reason_with(zip_of([("c:evil.dll", b"x")]), "drive letter")


def test_control_character_in_name_refused() -> None:
    one_reason_with(zip_of([("IHE_XDM/SUBSET01/DOC\x1b[2J.XML", b"x")]), "control character")


def test_duplicate_names_refused() -> None:
    files = list(members(valid_archive()).items())
    one_reason_with(zip_of([*files, (CDA, b"<other/>")]), "duplicate entry", "the same name")


def test_duplicate_names_differing_in_case_refused() -> None:
    files = list(members(valid_archive()).items())
    one_reason_with(zip_of([*files, (CDA.lower(), b"<other/>")]), "duplicate entry",
                    "but for case")


def test_symlink_entry_refused() -> None:
    link = zipfile.ZipInfo("IHE_XDM/SUBSET01/DOC0003.XML")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    files = list(members(valid_archive()).items())
    one_reason_with(zip_of([*files, (link, b"/etc/passwd")]), "symbolic link entry")


def test_device_entry_refused() -> None:
    fifo = zipfile.ZipInfo("FIFO")
    fifo.create_system = 3
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    one_reason_with(zip_of([(fifo, b"")]), "not a regular file")


def test_encrypted_entry_refused() -> None:
    one_reason_with(encrypted(valid_archive(), CDA), "encrypted entry")


def test_unusual_compression_refused() -> None:
    one_reason_with(zip_of([("README.TXT", b"hello" * 100)], zipfile.ZIP_BZIP2),
                    "compressed with method 12")


def test_corrupted_data_refused() -> None:
    archive = bytearray(zip_of([("A.TXT", b"hello world " * 1000)]))
    archive[60:70] = b"\xff" * 10  # inside the deflate stream
    reasons = refusal(bytes(archive))
    assert any("cannot be read" in r for r in reasons), reasons


def test_xxe_in_metadata_refused() -> None:
    files = members(valid_archive())
    files[METADATA] = (b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM '
                       b'"file:///etc/passwd">]>\n'
                       + files[METADATA].split(b"?>", 1)[1].replace(
                           b"<rim:RegistryObjectList>", b"<rim:RegistryObjectList>&x;", 1))
    one_reason_with(rezip(files), METADATA, "document type declaration (DTD) is not allowed")


def test_billion_laughs_in_metadata_refused() -> None:
    laughs = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "lol">'
              + b"".join(b'<!ENTITY %c "%s">' % (98 + n, b"&" + bytes([97 + n]) + b";" * 1 * 10)
                         for n in range(8)) + b']><l>&i;</l>')
    files = members(valid_archive())
    files[METADATA] = laughs
    one_reason_with(rezip(files), "DTD")


def test_xxe_in_cda_refused() -> None:
    hostile = CONSULTATION.replace(
        b'<?xml-stylesheet',
        b'<!DOCTYPE ClinicalDocument [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>\n'
        b'<?xml-stylesheet', 1)
    archive = with_document(valid_archive(), CDA, hostile)
    one_reason_with(archive, CDA, "document type declaration (DTD) is not allowed")


def test_xxe_in_cda_refused_at_build() -> None:
    hostile = CONSULTATION.replace(b"<?xml-stylesheet",
                                   b'<!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd">\n'
                                   b"<?xml-stylesheet", 1)
    with pytest.raises(DocumentRefused, match="DTD"):
        build([SourceDocument(hostile)])


def test_sha1_mismatch_refused() -> None:
    tampered = with_document(valid_archive(), PDF, b"%PDF-1.4 another document",
                             fix=False)
    reasons = one_reason_with(tampered, PDF, "SHA-1", "differs from the metadata")
    assert any("octets, the metadata says" in r for r in reasons)  # every reason collected


def test_size_mismatch_refused() -> None:
    files = members(valid_archive())
    files[PDF] = CONSULTATION_PDF + b"\n"
    fix_metadata(files, size=False)
    one_reason_with(rezip(files), PDF, "octets, the metadata says")


def test_missing_document_refused() -> None:
    files = members(valid_archive())
    del files[PDF]
    one_reason_with(rezip(files), f"{PDF} is named in the metadata but missing")


def test_missing_metadata_refused() -> None:
    files = members(valid_archive())
    del files[METADATA]
    one_reason_with(rezip(files), "no IHE_XDM/<subset>/METADATA.XML")


def test_patient_mismatch_between_metadata_and_cda_refused() -> None:
    other = CONSULTATION.replace(b'extension="279035121518989"',
                                 b'extension="185079935012361"')
    archive = with_document(valid_archive(), CDA, other)
    one_reason_with(archive, CDA, "185079935012361", "is not the metadata's",
                    "279035121518989")


def test_patient_mismatch_between_entries_refused() -> None:
    files = members(valid_archive())
    text = files[METADATA].decode()
    first = text.index(f'identificationScheme="{DE_PATIENT_ID}"')
    files[METADATA] = (text[:first] + text[first:].replace(
        "279035121518989^^^", "185079935012361^^^", 1)).encode()
    one_reason_with(rezip(files), "is not the submission set's")


def test_invalid_ins_key_in_metadata_refused() -> None:
    files = members(valid_archive())
    files[METADATA] = files[METADATA].replace(b"279035121518989^^^", b"279035121518988^^^")
    one_reason_with(rezip(files), "wrong INS key")


def test_uri_with_path_traversal_refused() -> None:
    files = members(valid_archive())
    files[METADATA] = files[METADATA].replace(b">DOC0002.PDF<", b">../../README.TXT<")
    one_reason_with(rezip(files), "URI '../../README.TXT' is not a file name of the subset")


def test_document_outside_the_submission_set_refused() -> None:
    files = members(valid_archive())
    root = etree.fromstring(files[METADATA])
    association = root.find(".//rim:Association", NS)
    assert association is not None
    association.getparent().remove(association)  # type: ignore[union-attr]
    files[METADATA] = etree.tostring(root)
    one_reason_with(rezip(files), "not a member of the submission set")


def test_metadata_not_ebrim_refused() -> None:
    files = members(valid_archive())
    files[METADATA] = b"<html><body>hello</body></html>"
    one_reason_with(rezip(files), "not lcm:SubmitObjectsRequest")


# --- extracting --------------------------------------------------------------------


def test_extract_writes_only_checked_documents(tmp_path: Path) -> None:
    into = tmp_path / "documents"
    written = extract(valid_archive(), into)
    assert [p.name for p in written] == ["DOC0001.XML", "DOC0002.PDF"]
    assert sorted(p.name for p in into.iterdir()) == ["DOC0001.XML", "DOC0002.PDF"]
    assert written[0].read_bytes() == CONSULTATION
    assert stat.S_IMODE(written[1].stat().st_mode) == 0o600
    again = extract(valid_archive(), into)  # never overwrites
    assert [p.name for p in again] == ["DOC0001-2.XML", "DOC0002-2.PDF"]


def test_extract_of_a_refused_archive_writes_nothing(tmp_path: Path) -> None:
    hostile = zip_of([("../../evil.sh", b"#!/bin/sh\n"), *members(valid_archive()).items()])
    with pytest.raises(DocumentRefused):
        extract(hostile, tmp_path / "in")
    assert not (tmp_path / "in").exists()
    assert not (tmp_path / "evil.sh").exists()


def test_extract_does_not_follow_a_planted_symlink(tmp_path: Path) -> None:
    into = tmp_path / "in"
    into.mkdir()
    target = tmp_path / "victim"
    (into / "DOC0001.XML").symlink_to(target)
    written = extract(valid_archive(), into)
    assert not target.exists()
    assert written[0].name == "DOC0001-2.XML"


def test_safe_name() -> None:
    taken: set[str] = set()
    assert safe_name("IHE_XDM/SUBSET01/../.hidden file.xml", taken) == "hidden_file.xml"
    assert safe_name("a\\b\\c.PDF", taken) == "c.PDF"
    assert safe_name("C.pdf", taken) == "C-2.pdf"
    assert safe_name("////", taken) == "document"


def test_deflate_stream_is_what_python_writes() -> None:
    # the builder writes ZIP_DEFLATED members any unzip reads
    with zipfile.ZipFile(io.BytesIO(valid_archive())) as zf:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
        assert zf.testzip() is None
    assert zlib.crc32(CONSULTATION) == zipfile.ZipFile(
        io.BytesIO(valid_archive())).getinfo(CDA).CRC


def _with_empty_central_name(archive: bytes) -> bytes:
    """``archive`` (one entry) with its central directory entry's name made empty: the
    local header keeps it, the lengths are made consistent, as a forged archive's are."""
    central = archive.index(b"PK\x01\x02")
    length = int.from_bytes(archive[central + 28:central + 30], "little")
    forged = (archive[:central + 28] + b"\x00\x00" + archive[central + 30:central + 46]
              + archive[central + 46 + length:])
    end = forged.index(b"PK\x05\x06")
    size = int.from_bytes(forged[end + 12:end + 16], "little") - length
    return forged[:end + 12] + size.to_bytes(4, "little") + forged[end + 16:]


def test_an_entry_with_an_empty_name_is_refused_not_crashing() -> None:
    """An entry without a name made zipfile's is_dir raise IndexError, an exception
    the checker did not turn into a refusal (found by the mutation property test)."""
    one_reason_with(_with_empty_central_name(zip_of([("A.TXT", b"x")])), "empty entry name")
