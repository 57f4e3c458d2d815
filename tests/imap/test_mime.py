"""ENVELOPE, BODYSTRUCTURE and BODY[section] of real-looking and of broken messages.

The sample messages defined here (a report with a PDF, an HTML alternative, a
forwarded message, an IHE XDM zip, quoted-printable French) are shared with the FETCH
and SEARCH tests. Every answer for a broken message is checked against the RFC 9051
§9 grammar by ``check_body`` / ``check_envelope``, and a property test does the same
for arbitrary octets.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import re
import zipfile
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mssante.content import mime as content_mime
from mssante.imap import mime
from mssante.imap.mime import BadSection, Message, Section, parse_section


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def b64lines(data: bytes) -> str:
    return base64.encodebytes(data).decode("ascii").rstrip("\n")


PDF = (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
       b"trailer\n<< /Root 1 0 R >>\n%%EOF\n")


def _xdm_zip() -> bytes:
    """An IHE XDM package (ITI TF-2b §3.32.4.1.2.2), as MSSanté mailers attach it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, content in (
            ("INDEX.HTM", b"<html><body>IHE XDM</body></html>"),
            ("README.TXT", b"Dossier transmis par messagerie MSSante"),
            ("IHE_XDM/SUBSET01/METADATA.XML", b"<SubmitObjectsRequest/>"),
            ("IHE_XDM/SUBSET01/DOC0001.XML", b"<ClinicalDocument xmlns='urn:hl7-org:v3'/>"),
        ):
            info = zipfile.ZipInfo(name, date_time=(2026, 3, 3, 10, 0, 0))
            archive.writestr(info, content)
    return buffer.getvalue()


XDM = _xdm_zip()

TEXT_QP = """\
Ch=C3=A8re consoeur,

Veuillez trouver ci-joint le compte rendu d'hospitalisation de M. L=C3=A9vy,=
 sorti le 2 mars.

Bien confraternellement,
Dr Andr=C3=A9 Martin"""

MIXED_PDF = crlf(f"""\
Return-Path: <dr.martin@hopital-nord.mssante.fr>
Date: Tue, 3 Mar 2026 10:15:00 +0100
From: =?utf-8?q?Dr_Andr=C3=A9_Martin?= <dr.martin@hopital-nord.mssante.fr>
To: "Dupont, Claire" <claire.dupont@cabinet.mssante.fr>,
 secretariat@cabinet.mssante.fr
Cc: Undisclosed recipients:;
Subject: =?utf-8?q?Compte_rendu_d=27hospitalisation_=E2=80=93_M=2E_L=C3=A9vy?=
Message-ID: <20260303101500.4242@hopital-nord.mssante.fr>
In-Reply-To: <demande-1234@cabinet.mssante.fr>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="=_frontiere_01"

This is a multi-part message in MIME format.
--=_frontiere_01
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

{TEXT_QP}
--=_frontiere_01
Content-Type: application/pdf; name="CR_hospitalisation.pdf"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="CR_hospitalisation.pdf"

{b64lines(PDF)}
--=_frontiere_01--
""")

ALTERNATIVE = crlf("""\
Date: Wed, 4 Mar 2026 08:00:00 +0000
From: Secretariat <secretariat@cabinet.mssante.fr>
To: claire.dupont@cabinet.mssante.fr
Subject: Rendez-vous
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=alt42

--alt42
Content-Type: text/plain; charset="us-ascii"

Rendez-vous le 12 mars a 9h.
--alt42
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: 8bit

<p>Rendez-vous le <b>12 mars</b> à 9h.</p>
--alt42--
""")

FORWARDED = crlf("""\
Date: Thu, 5 Mar 2026 14:00:00 +0100
From: claire.dupont@cabinet.mssante.fr
To: dr.martin@hopital-nord.mssante.fr
Subject: Fwd: Rendez-vous
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: text/plain; charset=utf-8

Voir ci-dessous.
--outer
Content-Type: message/rfc822
Content-Description: Message transfere

""") + ALTERNATIVE + crlf("""\
--outer--
""")

XDM_MESSAGE = crlf(f"""\
Date: Fri, 6 Mar 2026 09:30:00 +0100
From: laboratoire@labo-centre.mssante.fr
To: claire.dupont@cabinet.mssante.fr
Subject: =?ISO-8859-1?B?UulzdWx0YXRzIGQnYW5hbHlzZXM=?=
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="xdm-boundary"

--xdm-boundary
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: quoted-printable

R=E9sultats d'analyses en pi=E8ce jointe (IHE XDM).
--xdm-boundary
Content-Type: application/zip; name="IHE_XDM.ZIP"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="IHE_XDM.ZIP"

{b64lines(XDM)}
--xdm-boundary--
""")

QP_FRENCH = crlf("""\
Date: Sat, 7 Mar 2026 07:05:00 +0100
From: "Hôpital Nord" <contact@hopital-nord.mssante.fr>
To: claire.dupont@cabinet.mssante.fr
Subject: =?utf-8?B?UsOpc3VsdGF0cw==?= =?utf-8?q?_disponibles?=
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable
Content-Language: fr

Les r=C3=A9sultats de l'=C3=A9chographie sont disponibles.
Cordialement,
L'=C3=A9quipe
""")

SAMPLES = [MIXED_PDF, ALTERNATIVE, FORWARDED, XDM_MESSAGE, QP_FRENCH]


# --- reading the answers back -------------------------------------------------------


def parse_sexp(data: bytes) -> Any:
    """An IMAP parenthesised value as Python: lists, bytes, int, None for NIL."""
    position = 0

    def value() -> Any:
        nonlocal position
        char = data[position:position + 1]
        if char == b"(":
            position += 1
            items = []
            while data[position:position + 1] != b")":
                assert position < len(data), "unterminated list"
                items.append(value())
                if data[position:position + 1] == b" ":
                    position += 1
            position += 1
            return items
        if char == b'"':
            out = bytearray()
            position += 1
            while data[position:position + 1] != b'"':
                if data[position:position + 1] == b"\\":
                    position += 1
                    assert data[position:position + 1] in (b'"', b"\\")
                byte = data[position]
                assert byte not in (0, 10, 13) and byte < 128, "not a quoted-string char"
                out.append(byte)
                position += 1
            position += 1
            return bytes(out)
        if char == b"{":
            end = data.index(b"}\r\n", position)
            length = int(data[position + 1:end])
            position = end + 3 + length
            return data[end + 3:position]
        end = position
        while end < len(data) and data[end:end + 1] not in (b" ", b")"):
            end += 1
        atom = data[position:end]
        position = end
        if atom == b"NIL":
            return None
        assert atom.isdigit(), f"unexpected atom {atom!r}"
        return int(atom)

    result = value()
    assert position == len(data), f"trailing data {data[position:]!r}"
    return result


def _nstring(value: Any) -> bool:
    return value is None or isinstance(value, bytes)


def check_envelope(env: Any) -> None:
    """RFC 9051 §9 envelope: 10 members, six of them address lists."""
    assert isinstance(env, list) and len(env) == 10
    assert all(_nstring(env[i]) for i in (0, 1, 8, 9))
    for addresses in env[2:8]:
        if addresses is None:
            continue
        assert isinstance(addresses, list) and addresses
        for address in addresses:
            assert isinstance(address, list) and len(address) == 4
            assert all(_nstring(part) for part in address)


def _params_ok(value: Any) -> bool:
    return value is None or (isinstance(value, list) and len(value) % 2 == 0 and len(value) > 0
                             and all(isinstance(v, bytes) for v in value))


def _lang_ok(value: Any) -> bool:
    return _nstring(value) or (isinstance(value, list) and len(value) > 0
                               and all(isinstance(v, bytes) for v in value))


def _dsp_ok(value: Any) -> bool:
    return value is None or (isinstance(value, list) and len(value) == 2
                             and isinstance(value[0], bytes) and _params_ok(value[1]))


def check_body(body: Any, extensible: bool) -> None:
    """RFC 9051 §9 body: a multipart of 1+ bodies or one typed part, with or without
    the extension data of BODYSTRUCTURE."""
    assert isinstance(body, list) and body
    if isinstance(body[0], list):
        index = 0
        while isinstance(body[index], list):
            check_body(body[index], extensible)
            index += 1
        assert isinstance(body[index], bytes)  # media-subtype
        rest = body[index + 1:]
        if extensible:
            assert len(rest) == 4
            assert _params_ok(rest[0]) and _dsp_ok(rest[1]) and _lang_ok(rest[2])
            assert _nstring(rest[3])
        else:
            assert rest == []
        return
    mtype, subtype, params, cid, description, encoding, size = body[:7]
    assert isinstance(mtype, bytes) and isinstance(subtype, bytes)
    assert _params_ok(params) and _nstring(cid) and _nstring(description)
    assert isinstance(encoding, bytes) and isinstance(size, int)
    index = 7
    kind = (mtype.lower(), subtype.lower())
    if kind[0] == b"text":
        assert isinstance(body[7], int)
        index = 8
    elif kind in ((b"message", b"rfc822"), (b"message", b"global")):
        check_envelope(body[7])
        check_body(body[8], extensible)
        assert isinstance(body[9], int)
        index = 10
    rest = body[index:]
    if extensible:
        assert len(rest) == 4
        assert _nstring(rest[0]) and _dsp_ok(rest[1]) and _lang_ok(rest[2])
        assert _nstring(rest[3])
    else:
        assert rest == []


def check_all_views(raw: bytes) -> Message:
    """Every view of a message answers, and BODYSTRUCTURE / BODY / ENVELOPE are valid."""
    message = Message(raw)
    check_envelope(parse_sexp(message.envelope()))
    check_body(parse_sexp(message.bodystructure(True)), True)
    check_body(parse_sexp(message.bodystructure(False)), False)
    for spec in ("", "HEADER", "TEXT", "1", "1.MIME", "2", "1.1", "2.HEADER", "2.TEXT",
                 "HEADER.FIELDS (FROM SUBJECT)", "HEADER.FIELDS.NOT (FROM)", "1.2.3"):
        assert isinstance(message.section(parse_section(spec)), bytes)
    for path in ((), (1,), (2,), (1, 1)):
        with contextlib.suppress(mime.UnknownEncoding):
            assert isinstance(message.binary(path), bytes)
    list(message.text_parts())
    list(message.header_texts())
    return message


# --- sections ---------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "expected"), [
    ("", Section()),
    ("HEADER", Section((), "HEADER")),
    ("text", Section((), "TEXT")),
    ("1", Section((1,))),
    ("1.2.MIME", Section((1, 2), "MIME")),
    ("2.HEADER", Section((2,), "HEADER")),
    ("3.1.TEXT", Section((3, 1), "TEXT")),
    ("HEADER.FIELDS (From Subject)", Section((), "HEADER.FIELDS", ("FROM", "SUBJECT"))),
    ("header.fields.not (X-Mailer)", Section((), "HEADER.FIELDS.NOT", ("X-MAILER",))),
    ('2.HEADER.FIELDS ("Message-ID" to)', Section((2,), "HEADER.FIELDS", ("MESSAGE-ID", "TO"))),
    ("HEADER.FIELDS (FROM from)", Section((), "HEADER.FIELDS", ("FROM", "FROM"))),
])
def test_section_specs(spec: str, expected: Section) -> None:
    assert parse_section(spec) == expected


@pytest.mark.parametrize("spec", [
    "MIME", "0", "1.0", "01", "1.", ".1", "1..2", "BOGUS", "HEADERS", "TEXT (FROM)",
    "HEADER.FIELDS", "HEADER.FIELDS ()", "HEADER.FIELDS FROM", "HEADER.FIELDS (FROM",
    "1.2.MIME.TEXT", "²", "99999999999",
])
def test_bad_section_specs(spec: str) -> None:
    with pytest.raises(BadSection):
        parse_section(spec)


def test_section_spelling_in_responses() -> None:
    assert str(parse_section("1.2.mime")) == "1.2.MIME"
    assert str(parse_section("header.fields (From  Subject)")) == "HEADER.FIELDS (FROM SUBJECT)"
    assert str(parse_section('HEADER.FIELDS ("a b")')) == 'HEADER.FIELDS ("A B")'
    assert str(parse_section("")) == ""


# --- a report with a PDF attachment ----------------------------------------------------------


def test_envelope_of_report_keeps_encoded_words_and_parses_addresses() -> None:
    assert mime.envelope(MIXED_PDF) == (
        b'("Tue, 3 Mar 2026 10:15:00 +0100" '
        b'"=?utf-8?q?Compte_rendu_d=27hospitalisation_=E2=80=93_M=2E_L=C3=A9vy?=" '
        b'(("=?utf-8?q?Dr_Andr=C3=A9_Martin?=" NIL "dr.martin" "hopital-nord.mssante.fr")) '
        b'(("=?utf-8?q?Dr_Andr=C3=A9_Martin?=" NIL "dr.martin" "hopital-nord.mssante.fr")) '
        b'(("=?utf-8?q?Dr_Andr=C3=A9_Martin?=" NIL "dr.martin" "hopital-nord.mssante.fr")) '
        b'(("Dupont, Claire" NIL "claire.dupont" "cabinet.mssante.fr")'
        b'(NIL NIL "secretariat" "cabinet.mssante.fr")) '
        b'((NIL NIL "Undisclosed recipients" NIL)(NIL NIL NIL NIL)) '
        b'NIL "<demande-1234@cabinet.mssante.fr>" '
        b'"<20260303101500.4242@hopital-nord.mssante.fr>")')


def test_bodystructure_of_report() -> None:
    text_size = len(crlf(TEXT_QP))
    pdf_size = len(crlf(b64lines(PDF)))
    text_lines = TEXT_QP.count("\n") + 1
    assert mime.bodystructure(MIXED_PDF, True) == (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" %d %d NIL NIL NIL NIL)'
        b'("application" "pdf" ("name" "CR_hospitalisation.pdf") NIL NIL "base64" %d NIL '
        b'("attachment" ("filename" "CR_hospitalisation.pdf")) NIL NIL) '
        b'"mixed" ("boundary" "=_frontiere_01") NIL NIL NIL)' % (text_size, text_lines, pdf_size))
    assert mime.bodystructure(MIXED_PDF, False) == (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" %d %d)'
        b'("application" "pdf" ("name" "CR_hospitalisation.pdf") NIL NIL "base64" %d) "mixed")'
        % (text_size, text_lines, pdf_size))


def test_sections_of_report() -> None:
    message = Message(MIXED_PDF)
    header, _, text = MIXED_PDF.partition(b"\r\n\r\n")

    def body(spec: str) -> bytes:
        return message.section(parse_section(spec))

    assert body("") == MIXED_PDF
    assert body("HEADER") == header + b"\r\n\r\n"
    assert body("TEXT") == text
    assert body("1") == crlf(TEXT_QP)
    assert body("1.MIME") == (b"Content-Type: text/plain; charset=utf-8\r\n"
                              b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")
    assert body("2") == crlf(b64lines(PDF))
    assert message.binary((2,)) == PDF
    assert message.binary((1,)).decode().startswith("Chère consoeur,\r\n")
    assert "M. Lévy, sorti le 2 mars" in message.binary((1,)).decode()
    assert body("HEADER.FIELDS (SUBJECT FROM)") == (
        b"From: =?utf-8?q?Dr_Andr=C3=A9_Martin?= <dr.martin@hopital-nord.mssante.fr>\r\n"
        b"Subject: =?utf-8?q?Compte_rendu_d=27hospitalisation_=E2=80=93_M=2E_L=C3=A9vy?=\r\n"
        b"\r\n")
    folded_to = (b'To: "Dupont, Claire" <claire.dupont@cabinet.mssante.fr>,\r\n'
                 b" secretariat@cabinet.mssante.fr\r\n")
    assert body("HEADER.FIELDS (to)") == folded_to + b"\r\n"  # the fold is kept as stored
    not_fields = body("HEADER.FIELDS.NOT (RETURN-PATH DATE FROM TO CC SUBJECT MESSAGE-ID)")
    assert not_fields == (b"In-Reply-To: <demande-1234@cabinet.mssante.fr>\r\n"
                          b"MIME-Version: 1.0\r\n"
                          b'Content-Type: multipart/mixed; boundary="=_frontiere_01"\r\n\r\n')
    assert body("HEADER.FIELDS (X-NOTHERE)") == b"\r\n"
    assert body("3") == b""  # no such part
    assert body("1.1") == b""
    assert body("1.HEADER") == b""  # part 1 is not a message/rfc822
    assert body("2.TEXT") == b""


def test_one_shot_section_helper() -> None:
    assert mime.section(MIXED_PDF, "2") == crlf(b64lines(PDF))
    with pytest.raises(BadSection):
        mime.section(MIXED_PDF, "2.FOO")


# --- alternative, forwarded, XDM, quoted-printable ----------------------------------------


def test_alternative_structure() -> None:
    structure = parse_sexp(mime.bodystructure(ALTERNATIVE, True))
    check_body(structure, True)
    plain, html, subtype, params = structure[0], structure[1], structure[2], structure[3]
    assert subtype == b"alternative" and params == [b"boundary", b"alt42"]
    assert plain[:6] == [b"text", b"plain", [b"charset", b"us-ascii"], None, None, b"7bit"]
    html_body = "<p>Rendez-vous le <b>12 mars</b> à 9h.</p>".encode()
    assert html[:8] == [b"text", b"html", [b"charset", b"utf-8"], None, None, b"8bit",
                        len(html_body), 1]
    assert mime.section(ALTERNATIVE, "2") == html_body


def test_forwarded_message_is_encapsulated() -> None:
    message = Message(FORWARDED)
    structure = parse_sexp(message.bodystructure(True))
    check_body(structure, True)
    forwarded = structure[1]
    assert forwarded[:5] == [b"message", b"rfc822", None, None, b"Message transfere"]
    assert forwarded[7] == parse_sexp(mime.envelope(ALTERNATIVE))  # envelope of the inner one
    assert forwarded[8] == parse_sexp(mime.bodystructure(ALTERNATIVE, True))
    inner = ALTERNATIVE[:-2]  # the CRLF before the delimiter belongs to it (RFC 2046 §5.1.1)
    assert forwarded[6] == len(inner)
    assert forwarded[9] == ALTERNATIVE.count(b"\n")  # the last line, now unterminated, counts

    def body(spec: str) -> bytes:
        return message.section(parse_section(spec))

    assert body("2") == inner
    assert body("2.HEADER") == inner.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert body("2.TEXT") == inner.partition(b"\r\n\r\n")[2]
    assert body("2.HEADER.FIELDS (SUBJECT)") == b"Subject: Rendez-vous\r\n\r\n"
    assert body("2.1") == b"Rendez-vous le 12 mars a 9h."
    assert body("2.2.MIME") == (b"Content-Type: text/html; charset=utf-8\r\n"
                                b"Content-Transfer-Encoding: 8bit\r\n\r\n")
    assert body("2.MIME").startswith(b"Content-Type: message/rfc822\r\n")
    assert body("2.3") == b""
    # BODY (not extensible) drops extension data at every level
    check_body(parse_sexp(message.bodystructure(False)), False)


def test_forwarded_single_part_message_part_one_is_its_body() -> None:
    raw = crlf("""\
Subject: outer
Content-Type: multipart/mixed; boundary=b1

--b1
Content-Type: message/rfc822

Subject: inner
Content-Type: text/plain

inner body
--b1--
""")
    message = Message(raw)
    assert message.section(parse_section("1.1")) == b"inner body"
    assert message.section(parse_section("1.1.MIME")) == (
        b"Subject: inner\r\nContent-Type: text/plain\r\n\r\n")
    assert message.section(parse_section("1.2")) == b""


def test_xdm_zip_attachment() -> None:
    message = Message(XDM_MESSAGE)
    structure = parse_sexp(message.bodystructure(True))
    check_body(structure, True)
    attachment = structure[1]
    assert attachment[:3] == [b"application", b"zip", [b"name", b"IHE_XDM.ZIP"]]
    assert attachment[8] == [b"attachment", [b"filename", b"IHE_XDM.ZIP"]]
    package = message.binary((2,))
    assert package == XDM
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        assert "IHE_XDM/SUBSET01/METADATA.XML" in archive.namelist()
    assert message.binary((1,)) == "Résultats d'analyses en pièce jointe (IHE XDM).".encode(
        "latin-1")
    assert structure[0][2] == [b"charset", b"ISO-8859-1"]


def test_single_part_quoted_printable_french() -> None:
    message = Message(QP_FRENCH)
    structure = parse_sexp(message.bodystructure(True))
    check_body(structure, True)
    body = QP_FRENCH.partition(b"\r\n\r\n")[2]
    assert structure == [b"text", b"plain", [b"charset", b"utf-8"], None, None,
                         b"quoted-printable", len(body), 3, None, None, b"fr", None]
    assert message.section(parse_section("1")) == body  # part 1 of a single part: its body
    assert message.section(parse_section("TEXT")) == body
    assert message.section(parse_section("1.MIME")) == message.section(parse_section("HEADER"))
    assert message.binary((1,)).decode() == (
        "Les résultats de l'échographie sont disponibles.\r\nCordialement,\r\nL'équipe\r\n")
    assert message.section(parse_section("2")) == b""
    envelope = parse_sexp(message.envelope())
    assert envelope[2] == [["Hôpital Nord".encode(), None, b"contact", b"hopital-nord.mssante.fr"]]
    assert b"{" in message.envelope()  # 8-bit display name: a literal, not a quoted string


def test_text_for_search_is_decoded() -> None:
    texts = list(Message(MIXED_PDF).text_parts())
    assert len(texts) == 1 and "M. Lévy, sorti le 2 mars" in texts[0]
    latin = list(Message(XDM_MESSAGE).text_parts())
    assert latin == ["Résultats d'analyses en pièce jointe (IHE XDM)."]
    forwarded = list(Message(FORWARDED).text_parts())
    assert forwarded[0] == "Voir ci-dessous." and "12 mars" in forwarded[2]
    headers = list(Message(FORWARDED).header_texts())
    assert any("Subject: Rendez-vous" in h for h in headers)  # the inner header too


@pytest.mark.parametrize(("value", "decoded"), [
    ("=?utf-8?q?Compte_rendu_d=27hospitalisation_=E2=80=93_M=2E_L=C3=A9vy?=",
     "Compte rendu d'hospitalisation – M. Lévy"),
    ("=?ISO-8859-1?B?UulzdWx0YXRzIGQnYW5hbHlzZXM=?=", "Résultats d'analyses"),
    ("=?utf-8?B?UsOpc3VsdGF0cw==?= =?utf-8?q?_disponibles?=", "Résultats disponibles"),
    ("Re: =?utf-8?q?caf=C3=A9?= noir", "Re: café noir"),
    ("=?utf-8*fr?q?=C3=A9t=C3=A9?=", "été"),  # RFC 2231 language suffix
    ("=?x-unknown?q?abc?=", "abc"),
    ("=?utf-8?b?####?=", ""),
    ("=?utf-8?B?w6k?=", "é"),  # missing padding
    ("=?base64?q?abc?=", "abc"),  # a codec that is not a text encoding
    ("plain", "plain"),
    ("=?broken", "=?broken"),
])
def test_encoded_words(value: str, decoded: str) -> None:
    assert mime.decode_words(value) == decoded


def test_header_text_falls_back_to_latin1() -> None:
    assert mime.header_text("Réunion".encode("latin-1")) == "Réunion"
    assert mime.header_text("Réunion".encode()) == "Réunion"


# --- addresses ---------------------------------------------------------------------------------


def _addresses(value: str) -> list[tuple[str | None, ...]]:
    raw = f"From: {value}\r\n\r\nx\r\n".encode()
    envelope = parse_sexp(mime.envelope(raw))
    return [tuple(None if v is None else v.decode() for v in a) for a in envelope[2] or []]


@pytest.mark.parametrize(("value", "expected"), [
    ("jean@example.fr", [(None, None, "jean", "example.fr")]),
    ("Jean Dupont <jean@example.fr>", [("Jean Dupont", None, "jean", "example.fr")]),
    ("Dr. Jean  Dupont <jean@example.fr>", [("Dr. Jean Dupont", None, "jean", "example.fr")]),
    ('"Dupont, Jean" <jean@example.fr>', [("Dupont, Jean", None, "jean", "example.fr")]),
    ('"Say \\"hi\\"" <a@b>', [('Say "hi"', None, "a", "b")]),
    ("jean@example.fr (Jean Dupont)", [(None, None, "jean", "example.fr")]),  # a comment
    ("<@relay.fr,@gw.fr:jean@example.fr>", [(None, "@relay.fr,@gw.fr", "jean", "example.fr")]),
    ('"jean dupont"@example.fr', [(None, None, '"jean dupont"', "example.fr")]),
    ('"jean"@example.fr', [(None, None, "jean", "example.fr")]),
    ("jean@[192.0.2.1]", [(None, None, "jean", "[192.0.2.1]")]),
    ("a@b, , c@d,", [(None, None, "a", "b"), (None, None, "c", "d")]),
    ("Equipe: a@b, C <c@d>;, e@f", [
        (None, None, "Equipe", None), (None, None, "a", "b"), ("C", None, "c", "d"),
        (None, None, None, None), (None, None, "e", "f")]),
    ("=?utf-8?q?Andr=C3=A9?= <a@b>", [("=?utf-8?q?Andr=C3=A9?=", None, "a", "b")]),
    ("(only a comment)", []),
    ("", []),
])
def test_address_lists(value: str, expected: list[tuple[str | None, ...]]) -> None:
    assert _addresses(value) == expected


@pytest.mark.parametrize("value", [
    "root", "Jean Dupont", "<>", "Jean <jean@example.fr", "Equipe: a@b", "(only a comment",
    "[ cardiologie@ch-xyz.mssante.fr(]<dupont@ch-xyz.mssante.fr>",
    "<@dupont@ch-xyz.mssante.fr>,<cardiologie@ch-xyz.mssante.fr>,",
])
def test_an_address_field_that_does_not_parse_shows_as_invalid(value: str) -> None:
    """The rules refuse these; a message stored by APPEND shows them as one placeholder,
    never as a guess at who wrote it."""
    assert _addresses(value) == [(None, None, "INVALID_ADDRESS", "MISSING_DOMAIN")]


def test_empty_address_header_is_nil_and_sender_defaults_to_from() -> None:
    raw = crlf("From: a@b\nSender:\nReply-To:   \nTo:\nSubject:\n\nbody\n")
    envelope = parse_sexp(mime.envelope(raw))
    assert envelope[1] == b""  # present but empty: an empty string, not NIL
    assert envelope[2] == envelope[3] == envelope[4] == [[None, None, b"a", b"b"]]
    assert envelope[5] is None


# --- broken MIME --------------------------------------------------------------------------------


def test_multipart_without_boundary_is_one_text_part() -> None:
    raw = crlf("Subject: x\nContent-Type: multipart/mixed\n\nhello\nworld\n")
    message = check_all_views(raw)
    assert parse_sexp(message.bodystructure(True))[:8] == [
        b"text", b"plain", [b"charset", b"us-ascii"], None, None, b"7bit", 14, 2]
    assert message.section(parse_section("1")) == b"hello\r\nworld\r\n"


def test_boundary_that_never_appears() -> None:
    raw = crlf("Content-Type: multipart/mixed; boundary=nowhere\n\n--elsewhere\nhi\n")
    message = check_all_views(raw)
    assert parse_sexp(message.bodystructure(False))[:2] == [b"text", b"plain"]


def test_boundary_never_closed_ends_last_part_at_end() -> None:
    raw = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n"
               "Content-Type: text/html\n\n<p>two</p>\n")
    message = check_all_views(raw)
    structure = parse_sexp(message.bodystructure(False))
    assert [part[1] for part in structure[:2]] == [b"plain", b"html"]
    assert message.section(parse_section("1")) == b"one"
    assert message.section(parse_section("2")) == b"<p>two</p>\r\n"


def test_only_a_closing_delimiter() -> None:
    raw = crlf("Content-Type: multipart/mixed; boundary=b\n\npreamble\n--b--\n")
    message = check_all_views(raw)
    assert parse_sexp(message.bodystructure(False))[0] == b"text"


def test_empty_parts_and_padding_after_delimiters() -> None:
    raw = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b  \n--b\t\n\nx\n--b-- \n")
    message = check_all_views(raw)
    assert message.section(parse_section("1")) == b""
    assert message.section(parse_section("2")) == b"x"


@pytest.mark.parametrize("content_type", [
    "garbage", "text", "/plain", "text/", "téxt/plain", "text/plain/extra", ";;;", "",
    "(comment only)", 'text/plain; charset="unterminated', "text/plain; =x; y; z=",
])
def test_garbage_content_type_is_text_plain(content_type: str) -> None:
    raw = f"Content-Type: {content_type}\r\n\r\nbody\r\n".encode()
    message = check_all_views(raw)
    structure = parse_sexp(message.bodystructure(True))
    assert structure[:2] == [b"text", b"plain"]


def test_content_type_with_comment_and_quoted_semicolon() -> None:
    raw = crlf('Content-Type: text/plain (texte); name="a;b.txt"; charset=utf-8\n\nx\n')
    structure = parse_sexp(mime.bodystructure(raw, True))
    assert structure[2] == [b"name", b"a;b.txt", b"charset", b"utf-8"]


def test_no_header_body_separator() -> None:
    raw = b"From: a@b\r\nSubject: no blank line\r\nThis line is the body.\r\nSecond.\r\n"
    message = check_all_views(raw)
    assert message.section(parse_section("HEADER")) == (
        b"From: a@b\r\nSubject: no blank line\r\n")
    assert message.section(parse_section("TEXT")) == b"This line is the body.\r\nSecond.\r\n"
    # no blank line in the message: none added to header fetches (RFC 3501 §6.4.5)
    assert message.section(parse_section("HEADER.FIELDS (SUBJECT)")) == (
        b"Subject: no blank line\r\n")


def test_header_only_message() -> None:
    raw = b"Subject: only a header\r\nFrom: a@b"
    message = check_all_views(raw)
    assert message.section(parse_section("HEADER")) == raw
    assert message.section(parse_section("TEXT")) == b""
    assert parse_sexp(message.envelope())[1] == b"only a header"


def test_bare_lf_line_endings() -> None:
    raw = (b"Subject: bare\nContent-Type: multipart/mixed; boundary=zz\n\n--zz\n"
           b"Content-Type: text/plain\n\nline one\nline two\n--zz\n"
           b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
           b"AAEC\n--zz--\n")
    message = check_all_views(raw)
    assert message.section(parse_section("1")) == b"line one\nline two"
    assert message.binary((2,)) == b"\x00\x01\x02"
    assert message.section(parse_section("HEADER")).endswith(b"boundary=zz\n\n")
    structure = parse_sexp(message.bodystructure(False))
    assert structure[0][7] == 2  # lines of the text part


def test_eight_bit_headers() -> None:
    raw = ("Subject: Résultats d'échographie\r\nFrom: Hôpital <a@b>\r\n"
           "Content-Type: text/plain; name=\"Ordonnance é.txt\"\r\n\r\nx\r\n").encode()
    message = check_all_views(raw)
    envelope = parse_sexp(message.envelope())
    assert envelope[1] == "Résultats d'échographie".encode()
    assert envelope[2][0][0] == "Hôpital".encode()
    latin = raw.decode().encode("latin-1")  # invalid UTF-8: kept byte for byte
    assert parse_sexp(Message(latin).envelope())[1] == "Résultats d'échographie".encode("latin-1")
    check_all_views(latin)


def test_empty_message() -> None:
    message = check_all_views(b"")
    assert message.envelope() == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert message.bodystructure(True) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)')
    assert message.section(parse_section("")) == b""
    assert message.section(parse_section("1")) == b""


def test_blank_line_only_message() -> None:
    message = check_all_views(b"\r\n")
    assert message.section(parse_section("HEADER")) == b"\r\n"
    assert message.section(parse_section("TEXT")) == b""


def test_boundary_prefix_of_inner_boundary() -> None:
    raw = crlf("""\
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: multipart/alternative; boundary=b-inner

--b-inner
Content-Type: text/plain

plain
--b-inner
Content-Type: text/html

<p>html</p>
--b-inner--
--b
Content-Type: text/plain

after
--b--
""")
    message = check_all_views(raw)
    structure = parse_sexp(message.bodystructure(False))
    assert structure[0][2] == b"alternative" and structure[1][1] == b"plain"
    assert message.section(parse_section("1.2")) == b"<p>html</p>"
    assert message.section(parse_section("2")) == b"after"


def test_digest_parts_default_to_message() -> None:
    raw = crlf("""\
Content-Type: multipart/digest; boundary=d

--d

Subject: first

one
--d
Content-Type: text/plain

not a message
--d--
""")
    message = check_all_views(raw)
    structure = parse_sexp(message.bodystructure(False))
    assert structure[0][:2] == [b"message", b"rfc822"]
    assert structure[0][7][1] == b"first"
    assert structure[1][:2] == [b"text", b"plain"]
    assert message.section(parse_section("1.TEXT")) == b"one"


def test_base64_message_rfc822_still_valid() -> None:
    inner = base64.encodebytes(b"Subject: hidden\r\n\r\nbody\r\n").decode()
    raw = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n"
               "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
               f"{inner}--b--\n")
    message = check_all_views(raw)
    assert message.binary((1,)) == b"Subject: hidden\r\n\r\nbody\r\n"  # BINARY decodes it


def test_binary_of_a_multipart_is_its_body() -> None:
    message = Message(FORWARDED)
    assert message.binary((2, 1)) == b"Rendez-vous le 12 mars a 9h."
    assert message.binary(()) == FORWARDED
    assert message.binary((9,)) == b""
    nested = Message(crlf("Content-Type: multipart/mixed; boundary=o\n\n--o\n"
                          "Content-Type: multipart/alternative; boundary=i\n\n--i\n\nx\n--i--\n"
                          "--o--\n"))
    assert nested.binary((1,)) == b"--i\r\n\r\nx\r\n--i--"


def test_nesting_bomb_is_bounded() -> None:
    depth = mime.MAX_DEPTH + 20
    raw = b"".join(b"Content-Type: multipart/mixed; boundary=n%d\r\n\r\n--n%d\r\n" % (i, i)
                   for i in range(depth)) + b"Content-Type: text/plain\r\n\r\ndeep\r\n"
    message = check_all_views(raw)
    assert message.bodystructure(False).count(b"(") <= mime.MAX_DEPTH + 5


def test_message_nesting_bomb_is_bounded() -> None:
    raw = b"Content-Type: message/rfc822\r\n\r\n" * (mime.MAX_DEPTH + 20) + b"x"
    check_all_views(raw)


def test_part_count_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(content_mime, "MAX_PARTS", 10)
    raw = crlf("Content-Type: multipart/mixed; boundary=p\n\n" + "--p\n\nx\n" * 50 + "--p--\n")
    message = check_all_views(raw)
    structure = parse_sexp(message.bodystructure(False))
    parts = [p for p in structure if isinstance(p, list)]
    assert 1 <= len(parts) <= 10
    assert parts[-1][6] > 1  # the rest stays in the last part


def test_stray_colon_lines_and_garbage_in_header() -> None:
    raw = crlf("Subject: ok\nthis is not a field\n continuation\nFrom: a@b\n\nbody\n")
    message = check_all_views(raw)
    assert parse_sexp(message.envelope())[1] == b"ok"
    kept = message.section(parse_section("HEADER.FIELDS.NOT (SUBJECT FROM)"))
    assert kept == b"this is not a field\r\n continuation\r\n\r\n"


def test_quoted_strings_and_literals_in_structures() -> None:
    raw = crlf('Subject: a "quoted" \\ word\nContent-Type: text/plain\n\nx\n')
    envelope = mime.envelope(raw)
    assert b'"a \\"quoted\\" \\\\ word"' in envelope
    long_subject = "x" * 1200
    envelope = mime.envelope(f"Subject: {long_subject}\r\n\r\n".encode())
    assert b"{1200}\r\n" + long_subject.encode() in envelope


def test_lines_count_an_unterminated_last_line() -> None:
    raw = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\ntwo\n--b--\n")
    assert parse_sexp(mime.bodystructure(raw, False))[0][7] == 2


def test_content_headers_in_extension_data() -> None:
    raw = crlf("""\
Content-Type: multipart/mixed; boundary=b
Content-Language: fr, en

--b
Content-Type: text/plain; charset=utf-8
Content-ID: <part1@cabinet>
Content-Description: Courrier
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==
Content-Disposition: inline
Content-Location: courrier.txt
Content-Language: fr

x
--b--
""")
    structure = parse_sexp(mime.bodystructure(raw, True))
    check_body(structure, True)
    part = structure[0]
    assert part[3:5] == [b"<part1@cabinet>", b"Courrier"]
    assert part[8:] == [b"Q2hlY2sgSW50ZWdyaXR5IQ==", [b"inline", None], b"fr", b"courrier.txt"]
    assert structure[-2] == [b"fr", b"en"]


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_octets_never_raise(raw: bytes) -> None:
    check_all_views(raw)


_PIECES = [b"\r\n", b"\n", b"\r\n\r\n", b"--b\r\n", b"--b--\r\n", b"--b", b"Content-Type: ",
           b"multipart/mixed; boundary=b", b"message/rfc822", b"text/plain", b";",
           b"Content-Transfer-Encoding: base64\r\n", b"=?utf-8?q?", b"?=", b'"', b"(", b")",
           b"<", b">", b"@", b":", b",", b"From: ", b"To: ", b"x", b" ", b"\xc3\xa9", b"\x00"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=60))
def test_mime_like_octets_never_raise(pieces: list[bytes]) -> None:
    check_all_views(b"".join(pieces))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SAMPLES), st.integers(min_value=0), st.integers(min_value=0),
       st.binary(max_size=20))
def test_damaged_samples_stay_valid(raw: bytes, cut: int, at: int, junk: bytes) -> None:
    cut %= len(raw) + 1
    at %= cut + 1
    check_all_views(raw[:at] + junk + raw[at:cut])


@pytest.mark.parametrize("raw", SAMPLES)
def test_samples_are_valid(raw: bytes) -> None:
    check_all_views(raw)


# --- large bodies decoded in pieces ----------------------------------------------------------


def _large_text(size: int) -> str:
    words = ("compte rendu", "échographie", "ß", "Œdème", "İnci", "€", "naïve", "\r\n")
    out, n = [], 0
    while n < size:
        word = words[(n * 7 + len(out)) % len(words)]
        out.append(word)
        n += len(word.encode("utf-8"))
    return "".join(out)


@pytest.mark.parametrize("encoding", ["base64", "quoted-printable", "8bit"])
def test_a_large_text_part_is_decoded_in_pieces_to_the_same_text(encoding: str) -> None:
    """A text part several PIECEs long: each piece decoded from about PIECE octets
    (a multi-octet character cut between two is joined again), and the pieces make
    the text decoded at once."""
    text = _large_text(3 * mime.PIECE + 1001)
    data = text.encode("utf-8")
    if encoding == "base64":
        body = base64.encodebytes(data).replace(b"\n", b"\r\n")
    elif encoding == "quoted-printable":
        import quopri
        body = quopri.encodestring(data).replace(b"\n", b"\r\n")
    else:
        body = data
    raw = (b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: " +
           encoding.encode() + b"\r\n\r\n" + body)
    [pieces] = list(Message(raw).text_pieces())
    assert len(pieces) > 3
    assert "".join(pieces).replace("\r\n", "\n") == text.replace("\r\n", "\n")
    assert mime.decode_transfer(body, encoding) == b"".join(
        mime.decoded_pieces(body, encoding))


def test_large_broken_base64_is_decoded_leniently() -> None:
    """Characters outside the alphabet, paddings in the middle, a lone trailing sextet:
    a large part is decoded as the lenient path decodes a whole part (every character
    outside the alphabet dropped, the end padded)."""
    chunk = base64.b64encode(b"x" * 3001) + b"\r\n!!*\r\n"
    body = chunk * (mime.PIECE // len(chunk) + 5) + b"Q"
    cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", body)
    if len(cleaned) % 4 == 1:
        cleaned = cleaned[:-1]
    expected = binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))
    assert mime.decode_transfer(body, "base64") == expected
