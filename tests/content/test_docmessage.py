"""The message that carries clinical documents, read back the way IMAP and the web read
stored messages (content/mime.py, content/headers.py)."""

from __future__ import annotations

import hashlib

import pytest
from tests.content.xdmtools import BIOLOGY_N1, CONSULTATION, CONSULTATION_PDF, zip_of

from mssante.content.docmessage import (
    Attachment,
    NamedFile,
    document_message,
    documents_message,
    pair_renderings,
    rendering_name,
)
from mssante.content.headers import read_headers
from mssante.content.mime import Entity, charset_decode, decode_transfer, parameters
from mssante.content.xdm import SourceDocument, build, check
from mssante.errors import DocumentRefused

SENDER = "dupont@ch-xyz.mssante.fr"
TO = ["jean.martin@medecin.mssante.fr"]


def _message(archive: bytes, **extra: str) -> tuple[bytes, Entity]:
    raw = document_message(sender=SENDER, sender_name="Dr Paul DUPONT", to=TO,
                           archive=archive,
                           text="Bonjour,\nvoici le compte rendu. Très cordialement.\n",
                           **extra)  # type: ignore[arg-type]
    return raw, Entity(raw, 0, len(raw))


def _filename(part: Entity) -> str:
    disposition = part.get("content-disposition") or ""
    return dict(parameters(disposition.partition(";")[2]))["filename"].strip('"')


def test_headers_subject_and_parts() -> None:
    archive = build([SourceDocument(CONSULTATION, CONSULTATION_PDF)])
    raw, root = _message(archive, software_reference="MSSANTE-OSS")
    view = read_headers(raw, strict=True)
    assert view.subject == ("XDM/1.0/DDM+Compte rendu de consultation de cardiologie "
                            "PAT-TROIS DOMINIQUE 28/03/1979")
    assert view.from_mailboxes[0].addr_spec == SENDER
    assert root.get("x-mss-codecda") == "11488-4"
    assert root.get("x-mss-ins") == "O"
    assert root.get("x-mss-nil") == "MSSANTE-OSS"
    assert root.content_type[:2] == ("multipart", "mixed")
    text, pdf, zipped = root.children
    assert text.content_type[:2] == ("text", "plain")
    assert dict(text.content_type[2])["charset"].lower() == "utf-8"
    assert "Très cordialement" in charset_decode(decode_transfer(text.body, text.encoding),
                                                 "utf-8")
    assert pdf.content_type[:2] == ("application", "pdf")
    assert _filename(pdf) == "20261203_11488-4_PAT-TROIS_DOMINIQUE_CR-2026-000417.pdf"
    assert decode_transfer(pdf.body, pdf.encoding) == CONSULTATION_PDF
    assert zipped.content_type[:2] == ("application", "zip")
    assert _filename(zipped) == "IHE_XDM.ZIP"
    carried = decode_transfer(zipped.body, zipped.encoding)
    assert carried == archive
    assert check(carried).patient_ins == "279035121518989"


def test_unqualified_ins_gives_n_and_no_nil_without_reference() -> None:
    raw, root = _message(build([SourceDocument(BIOLOGY_N1)]))
    assert root.get("x-mss-ins") == "N"
    assert root.get("x-mss-codecda") == "11502-2"
    assert root.get("x-mss-nil") is None
    assert [p.content_type[:2] for p in root.children] == [("text", "plain"),
                                                            ("application", "zip")]
    assert read_headers(raw).subject == \
        "XDM/1.0/DDM+Compte rendu d'examens biologiques MARTINEZ Pierre"


def test_every_cda_code_in_order() -> None:
    second = CONSULTATION.replace(b'code="11488-4"', b'code="34112-3"') \
        .replace(b'extension="CR-2026-000417"', b'extension="CR-2026-000418"', 1)
    archive = build([SourceDocument(CONSULTATION, CONSULTATION_PDF),
                     SourceDocument(second, CONSULTATION_PDF)])
    _, root = _message(archive, label="Comptes rendus")
    assert root.get("x-mss-codecda") == "11488-4,34112-3"
    names = [_filename(p) for p in root.children[1:-1]]
    assert names == ["20261203_11488-4_PAT-TROIS_DOMINIQUE_CR-2026-000417.pdf",
                     "20261203_34112-3_PAT-TROIS_DOMINIQUE_CR-2026-000418.pdf"]
    assert (root.get("subject") or "").startswith("XDM/1.0/DDM+Comptes rendus PAT-TROIS")


def test_a_refused_archive_makes_no_message() -> None:
    with pytest.raises(DocumentRefused, match="path traversal"):
        _message(zip_of([("../evil", b"x")]))


def test_rendering_name_is_plain_ascii() -> None:
    accented = CONSULTATION.replace(b">DOMINIQUE<", "> Hélène Zoé/../<".encode(), 1)
    header = check(build([SourceDocument(accented)])).cdas[0]
    assert rendering_name(header) == \
        "20261203_11488-4_PAT-TROIS_Helene-Zoe_CR-2026-000417.pdf"


SECOND = CONSULTATION.replace(b'extension="CR-2026-000417"', b'extension="CR-2026-000418"', 1)


def test_renderings_pair_by_file_name_then_in_order() -> None:
    cr, bio = NamedFile("CR.xml", CONSULTATION), NamedFile("dir/bio.XML", SECOND)
    by_name, by_rank = NamedFile("bio.pdf", b"1"), NamedFile("scan.pdf", b"2")
    assert pair_renderings([cr, bio], [by_rank, by_name]) == [(cr, by_rank), (bio, by_name)]
    assert pair_renderings([cr, bio], [by_rank]) == [(cr, by_rank), (bio, None)]
    with pytest.raises(DocumentRefused, match="one at most"):
        pair_renderings([cr], [by_rank, by_name])
    with pytest.raises(DocumentRefused, match=r"second PDF rendering of CR\.xml"):
        pair_renderings([cr, bio], [NamedFile("cr.pdf", b"1"), NamedFile("CR.PDF", b"2")])
    with pytest.raises(DocumentRefused, match="no CDA"):
        pair_renderings([], [])


def test_files_in_give_the_message_and_what_the_archive_records() -> None:
    built = documents_message(
        [NamedFile("cr.xml", CONSULTATION), NamedFile("second.xml", SECOND)],
        [NamedFile("cr.pdf", CONSULTATION_PDF)], sender=SENDER, to=TO, label="Comptes rendus",
        headers=[("In-Reply-To", "<a@b>")],
        attachments=[Attachment("note.txt", "text/plain", b"hello")])
    root = Entity(built.raw, 0, len(built.raw))
    assert [d.name for d in built.documents] == ["cr.xml", "cr.pdf", "second.xml"]
    carried = decode_transfer(root.children[-2].body, root.children[-2].encoding)
    archived = check(carried).documents
    assert [(d.sha1, d.size) for d in built.documents] == [(d.sha1, d.size) for d in archived]
    assert built.documents[0].as_json()["sha1"] == hashlib.sha1(CONSULTATION).hexdigest()
    assert root.get("message-id") == built.message_id
    assert root.get("in-reply-to") == "<a@b>"
    assert (root.get("subject") or "").startswith("XDM/1.0/DDM+Comptes rendus PAT-TROIS")
    assert _filename(root.children[-1]) == "note.txt"


def test_a_subject_given_replaces_the_documents_one() -> None:
    built = documents_message([NamedFile("cr.xml", CONSULTATION)], sender=SENDER, to=TO,
                              subject="XDM/1.0/DDM+CR")
    assert read_headers(built.raw).subject == "XDM/1.0/DDM+CR"
    assert built.raw.count(b"\r\nSubject:") == 1
