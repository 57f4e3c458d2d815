"""The mailbox the sending rules checked is the mailbox IMAP shows (issue 9 §2.1).

The rules read a message's From and Sender through ``content.headers.read_headers``
(strict, as SMTP calls it); IMAP shows them in ENVELOPE and matches them in SEARCH through
``imap.mime``. For any header section the rules accept, both must name the same mailbox:
the property is checked on generated From fields, hostile ones among them.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mssante.content.headers import HeaderSyntaxError, canonical_line_endings, read_headers
from mssante.domain.addresses import Mailbox
from mssante.errors import InvalidAddress
from mssante.imap import mime
from tests.imap.test_mime import parse_sexp

# pieces of the spoofs of issue 9 and of every RFC 5322 §3.4 form
_PIECES = ['<', '>', '@', ',', ';', ':', '.', '"', '(', ')', '[', ']', '\\', ' ', '\t',
           "\r\n ", "Dr", "Dupont", "cardiologie", "dupont", "ch-xyz.mssante.fr",
           "@ch-xyz.mssante.fr", "@dupont", "=?utf-8?q?Andr=C3=A9?=", "é", '"x y"',
           "(c (d))", "[192.0.2.1]", "<dupont@ch-xyz.mssante.fr>",
           "<cardiologie@ch-xyz.mssante.fr>", "cardiologie@ch-xyz.mssante.fr"]
_soup = st.lists(st.sampled_from(_PIECES), max_size=14).map("".join)
_likely = st.builds(
    lambda a, b, c, d: f"{a}{b}<{c}cardiologie@ch-xyz.mssante.fr{d}>",
    st.sampled_from(["", "Dr Dupont ", '"Dupont, Paul" ', "(x) ", "Dr. ", "=?utf-8?q?x?= "]),
    st.sampled_from(["", " (dupont@ch-xyz.mssante.fr)", "\r\n\t"]),
    st.sampled_from(["", "@relay.fr:", "@a,@b:"]),
    st.sampled_from(["", " ", "(c)"]))
_values = st.one_of(_soup, _likely)


def _structure(mailbox: Mailbox) -> list[bytes | None]:
    def enc(text: str | None) -> bytes | None:
        return None if text is None else text.encode("utf-8", "surrogateescape")

    return [enc(mailbox.display_name), enc(mailbox.route), enc(mailbox.local_text),
            enc(mailbox.domain)]


@settings(max_examples=400, deadline=None)
@given(from_value=_values, sender_value=st.one_of(st.none(), _values))
def test_envelope_shows_the_mailbox_the_rules_checked(from_value: str,
                                                      sender_value: str | None) -> None:
    head = f"From:{from_value}\r\n"
    if sender_value is not None:
        head += f"Sender:{sender_value}\r\n"
    body = canonical_line_endings(f"{head}Subject: x\r\n\r\nbody\r\n".encode())
    try:
        headers = read_headers(body, strict=True)
    except HeaderSyntaxError:
        return  # refused with 550 5.6.0: nobody reads it
    envelope = parse_sexp(mime.envelope(body))
    if not headers.has_from:  # a CR LF in the value made it another field
        assert envelope[2] is None
        return
    (author,) = headers.from_mailboxes
    assert envelope[2] == [_structure(author)]
    assert envelope[3] == [_structure(headers.sender or author)]
    try:
        checked = author.address()  # what check_may_send_as compares
    except InvalidAddress:
        pass  # refused by the rules as no trust-space address
    else:
        shown = envelope[2][0]
        assert f"{shown[2].decode()}@{shown[3].decode()}".lower() == checked.key
    # SEARCH FROM matches the summary the store keeps, which is the same text
    if "=?" not in from_value:
        raw = body.split(b"\r\n\r\n")[0]
        field = mime.Message(raw + b"\r\n\r\n").root.values("from")[0]
        assert mime.address_text(field) == headers.from_header


_lines = st.one_of(
    _values.map(lambda v: f"From:{v}"), _values.map(lambda v: f"Sender:{v}"),
    _values.map(lambda v: f" {v}"),
    st.sampled_from(["", " ", "\t", "Subject: x", "garbage", "From", "from :", "FROM\t:",
                     " From: <dupont@ch-xyz.mssante.fr>", "\r", "\n"]))


@settings(max_examples=400, deadline=None)
@given(st.lists(_lines, max_size=6))
def test_envelope_and_rules_read_the_same_header_section(lines: list[str]) -> None:
    """Where the header section ends, which line is a field and which a continuation:
    the rules and IMAP find the same From and Sender, whatever the lines."""
    body = canonical_line_endings(("\r\n".join(lines) + "\r\n\r\nbody\r\n").encode())
    try:
        headers = read_headers(body, strict=True)
    except HeaderSyntaxError:
        return
    envelope = parse_sexp(mime.envelope(body))
    if not headers.has_from:
        assert envelope[2] is None, envelope
        return
    (author,) = headers.from_mailboxes
    assert envelope[2] == [_structure(author)]
    assert envelope[3] == [_structure(headers.sender or author)]
