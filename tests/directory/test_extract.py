"""The national extract: header, rejected lines, write/read round trip, diff."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mssante.directory.extract import (
    COLUMNS,
    ExtractDiff,
    ExtractFormatError,
    ExtractRow,
    RejectedLine,
    diff_extracts,
    read_extract,
    write_extract,
)
from mssante.directory.generate import generate_rows
from mssante.domain.mailboxes import MailboxType
from mssante.errors import InvalidAddress, MSSanteError

# The header exactly as the MSSanté reference ("National directory") writes it.
REFERENCE_HEADER = (
    "Type de BAL|Adresse BAL|Type Identifiant PP|Identifiant PP|Identification nationale PP|"
    "Type identifiant structure|Identification Structure|Service de rattachement|"
    "Civilité d'exercice|Nom d'exercice|Prénom d'exercice|Catégorie profession|"
    "Libellé de catégorie profession|Code Profession|Libellé Profession|Code savoir-faire|"
    "Libellé savoir-faire|Dématérialisation|Raison Sociale structure BAL|"
    "Enseigne commerciale structure BAL|L2COMPLEMENTLOCALISATION structure BAL|"
    "L3COMPLEMENTDISTRIBUTION structure BAL|L4NUMEROVOIE structure BAL|"
    "L4COMPLEMENTNUMEROVOIE structure BAL|NL4TYPEVOIE structure BAL|"
    "L4LIBELLEVOIE structure BAL|L5LIEUDITMENTION structure BAL|"
    "L6LIGNEACHEMINEMENT structure BAL|Code postal structure BAL|Département structure BAL|"
    "Pays structure BAL"
)
HEADER = "|".join(COLUMNS)


def values(address: str = "helene.lefevre@medecin.mssante.fr", **changes: str) -> list[str]:
    """The 31 values of a valid PER line, with some columns replaced (by index name)."""
    row = ["PER", address, "8", "10101010101", "810101010101", "3", "312345678901234", "",
           "DR", "Lefèvre", "Hélène", "C", "Civil", "10", "Médecin", "SM26",
           "Qualifié en Médecine générale", "True", "CABINET MEDICAL LEFEVRE", "", "", "",
           "12", "", "R", "de la République", "", "69003 LYON", "69003", "69", "FRANCE"]
    for name, value in changes.items():
        row[int(name.removeprefix("c"))] = value
    return row


def line(address: str = "helene.lefevre@medecin.mssante.fr", **changes: str) -> str:
    return "|".join(values(address, **changes))


def read_all(text: str) -> list[ExtractRow | RejectedLine]:
    return list(read_extract(io.StringIO(text, newline="")))


def rows_of(text: str) -> list[ExtractRow]:
    result = read_all(text)
    assert all(isinstance(item, ExtractRow) for item in result), result
    return [item for item in result if isinstance(item, ExtractRow)]


def test_columns_are_the_reference_header() -> None:
    assert len(COLUMNS) == 31
    assert HEADER == REFERENCE_HEADER


def test_reads_a_valid_line() -> None:
    [row] = rows_of(f"{HEADER}\n{line()}\n")
    assert row.mailbox_type is MailboxType.PER
    assert row.address == "helene.lefevre@medecin.mssante.fr"
    assert (row.family_name, row.given_name, row.civility) == ("Lefèvre", "Hélène", "DR")
    assert (row.profession_code, row.skill_code) == ("10", "SM26")
    assert row.digitization is True
    assert (row.routing_line, row.postal_code, row.country) == ("69003 LYON", "69003", "FRANCE")
    assert list(row.values()) == values()


def test_address_is_lower_cased() -> None:
    [row] = rows_of(f"{HEADER}\n{line('Helene.LEFEVRE@Medecin.MSSANTE.fr')}\n")
    assert row.address == "helene.lefevre@medecin.mssante.fr"


@pytest.mark.parametrize("text", [
    f"\ufeff{HEADER}\n{line()}\n",  # UTF-8 byte order mark
    f"{HEADER}\r\n{line()}\r\n",  # CRLF
    f"\ufeff{HEADER}\r\n{line()}\r\n\r\n",  # both, and an empty trailing line
    f"{HEADER}\n{line()}",  # no final line end
    f"{HEADER}\n{line()}\n\n\n",  # several empty trailing lines
])
def test_tolerated_variants(text: str) -> None:
    [row] = rows_of(text)
    assert row.address == "helene.lefevre@medecin.mssante.fr"
    assert row.country == "FRANCE"  # no "\r" left on the last value


def test_crlf_file_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "Extraction_Correspondance_MSSante.txt"
    path.write_bytes(f"\ufeff{HEADER}\r\n{line()}\r\n".encode())
    with path.open(encoding="utf-8") as handle:
        [row] = list(read_extract(handle))
    assert isinstance(row, ExtractRow) and row.country == "FRANCE"


def test_lines_without_line_ends() -> None:
    [row] = list(read_extract([HEADER, line()]))
    assert isinstance(row, ExtractRow)


@pytest.mark.parametrize(("header", "message"), [
    (HEADER.replace("Civilité", "Civilite"), "column 9 should be \"Civilité d'exercice\""),
    (HEADER.replace("Type de BAL", "type de BAL"), "column 1 should be 'Type de BAL'"),
    (HEADER.replace("|", ";"), "column 1 should be 'Type de BAL'"),
    (HEADER.removesuffix("|Pays structure BAL"), "column 31 'Pays structure BAL' is missing"),
    (HEADER + "|Extra", "unexpected column 32 'Extra'"),
    (line(), "column 1 should be 'Type de BAL', found 'PER'"),
])
def test_wrong_header_names_the_first_differing_column(header: str, message: str) -> None:
    with pytest.raises(ExtractFormatError) as info:
        read_all(f"{header}\n{line()}\n")
    assert message in str(info.value)
    assert isinstance(info.value, MSSanteError)


def test_empty_file_has_no_header() -> None:
    with pytest.raises(ExtractFormatError, match="no header"):
        read_all("")


def test_header_is_checked_before_any_row_is_read() -> None:
    reader = read_extract(io.StringIO("nope\n"))
    with pytest.raises(ExtractFormatError):
        next(reader)


def test_each_rejection_with_its_line_number() -> None:
    bad = [
        line("a@medecin.mssante.fr") + "|extra",  # line 2
        "|".join(values("b@medecin.mssante.fr")[:30]),  # line 3
        line("c@medecin.mssante.fr", c0="XYZ"),  # line 4
        line("d@medecin.mssante.fr", c0="PAT"),  # line 5
        line("not an address"),  # line 6
        line("e@gmail.com"),  # line 7
        line("f@patient.mssante.fr"),  # line 8
        line("g@medecin.mssante.fr", c17="true"),  # line 9
        line("h@medecin.mssante.fr", c17=""),  # line 10
        line("ok@medecin.mssante.fr"),  # line 11: good
        "",  # line 12: empty line followed by data
        line("OK@Medecin.mssante.fr"),  # line 13: duplicate of line 11
    ]
    result = read_all(HEADER + "\n" + "\n".join(bad) + "\n")
    rejected = [item for item in result if isinstance(item, RejectedLine)]
    good = [item for item in result if isinstance(item, ExtractRow)]
    assert [row.address for row in good] == ["ok@medecin.mssante.fr"]
    expected = [
        (2, "expected 31 columns, found 32"),
        (3, "expected 31 columns, found 30"),
        (4, "unknown mailbox type 'XYZ'"),
        (5, "mailbox type 'PAT' is not allowed in the directory"),
        (6, "invalid address"),
        (7, "outside the trust space"),
        (8, "patient address"),
        (9, "Dématérialisation must be True or False, found 'true'"),
        (10, "Dématérialisation must be True or False, found ''"),
        (12, "empty line"),
        (13, "duplicate address 'ok@medecin.mssante.fr', first on line 11"),
    ]
    assert [(r.line_number, r.reason) for r in rejected] == [
        (number, r.reason) for (number, _), r in zip(expected, rejected, strict=True)]
    for (number, reason), item in zip(expected, rejected, strict=True):
        assert item.line_number == number
        assert reason in item.reason, (number, item.reason)
    lines = (HEADER + "\n" + "\n".join(bad)).split("\n")
    for item in rejected:
        assert item.text == lines[item.line_number - 1]


def test_rejections_keep_their_order_among_rows() -> None:
    text = "\n".join([HEADER, line("a@x.mssante.fr"), line("a@x.mssante.fr"),
                      line("b@x.mssante.fr")])
    kinds = [type(item).__name__ for item in read_all(text)]
    assert kinds == ["ExtractRow", "RejectedLine", "ExtractRow"]


def test_row_constructor_checks_type_and_address() -> None:
    [row] = rows_of(f"{HEADER}\n{line()}\n")
    assert dataclasses.replace(row, address="X.Y@Pharmacien.MSSANTE.FR").address == (
        "x.y@pharmacien.mssante.fr")
    assert dataclasses.replace(row, mailbox_type="CAB").mailbox_type is MailboxType.CAB  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="PAT"):
        dataclasses.replace(row, mailbox_type=MailboxType.PAT)
    with pytest.raises(InvalidAddress):
        dataclasses.replace(row, address="nobody")


def test_write_then_read_generated_rows(tmp_path: Path) -> None:
    rows = list(generate_rows(3000, seed=11))
    path = tmp_path / "extract.txt"
    with path.open("w", encoding="utf-8", newline="") as out:
        assert write_extract(rows, out) == 3000
    data = path.read_bytes()
    assert data.startswith(REFERENCE_HEADER.encode() + b"\n")
    assert b"\r" not in data
    assert data.count(b"\n") == 3001
    with path.open(encoding="utf-8") as handle:
        assert list(read_extract(handle)) == rows


def test_write_empty_extract_is_just_the_header() -> None:
    out = io.StringIO()
    assert write_extract([], out) == 0
    assert out.getvalue() == REFERENCE_HEADER + "\n"
    assert read_all(out.getvalue()) == []


@pytest.mark.parametrize("value", ["A|B", "two\nlines", "carriage\rreturn"])
def test_write_refuses_what_the_format_cannot_hold(value: str) -> None:
    [row] = rows_of(f"{HEADER}\n{line()}\n")
    with pytest.raises(ValueError, match="Raison Sociale structure BAL"):
        write_extract([dataclasses.replace(row, legal_name=value)], io.StringIO())


# Values the format can carry: no separator, no line end (StringIO splits on \r too).
value_text = st.text(st.characters(blacklist_characters="|\r\n",
                                   blacklist_categories=("Cs",)), max_size=12)
atom = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789!#$%&'*+/=?^_`{}~-",
               min_size=1, max_size=8)
label = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?\Z")
address_text = st.builds(
    lambda locals_, labels: ".".join(locals_) + "@" + ".".join([*labels, "mssante", "fr"]),
    st.lists(atom, min_size=1, max_size=3), st.lists(label, min_size=1, max_size=2),
).filter(lambda a: not a.endswith("@patient.mssante.fr") and len(a.split("@")[0]) <= 64)


@st.composite
def extract_rows(draw: st.DrawFn) -> ExtractRow:
    texts = [draw(value_text) for _ in range(28)]
    return ExtractRow(draw(st.sampled_from(["PER", "ORG", "APP", "CAB"])),  # type: ignore[arg-type]
                      draw(address_text), *texts[:15], draw(st.booleans()), *texts[15:])


@settings(max_examples=60, deadline=None)
@given(st.lists(extract_rows(), max_size=5, unique_by=lambda row: row.address))
def test_round_trip_any_values(rows: list[ExtractRow]) -> None:
    out = io.StringIO()
    assert write_extract(rows, out) == len(rows)
    assert list(read_extract(io.StringIO(out.getvalue(), newline=""))) == rows


def test_diff_created_changed_removed() -> None:
    a, b, c, d = rows_of("\n".join([HEADER, *(line(f"{name}@medecin.mssante.fr")
                                               for name in "abcd")]))
    b2 = dataclasses.replace(b, family_name="Dupont", digitization=False)
    diff = diff_extracts([a, b, c], [d, b2, a])
    assert diff == ExtractDiff(created=[d], changed=[(b, b2)], removed=[c])


def test_diff_of_generated_extracts() -> None:
    old = list(generate_rows(2000, seed=5))
    kept = old[100:]
    new = [dataclasses.replace(row, service="Nouveau service") if i % 50 == 0 else row
           for i, row in enumerate(kept)]
    created = [dataclasses.replace(row, address="nouveau." + row.address) for row in old[:30]]
    diff = diff_extracts(old, created[:10] + new + created[10:])
    assert diff.created == created
    assert diff.removed == old[:100]
    assert diff.changed == [(kept[i], new[i]) for i in range(0, len(kept), 50)]
    assert diff_extracts(old, old) == ExtractDiff()
    assert diff_extracts([], old) == ExtractDiff(created=old)
    assert diff_extracts(old, []) == ExtractDiff(removed=old)


def test_diff_refuses_duplicate_addresses() -> None:
    rows = list(generate_rows(3, seed=1))
    with pytest.raises(ValueError, match="old extract"):
        diff_extracts([rows[0], rows[0]], rows)
    with pytest.raises(ValueError, match="new extract"):
        diff_extracts(rows, [rows[1], rows[1]])
