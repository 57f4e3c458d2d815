"""The national extract ``Extraction_Correspondance_MSSante``: read, write, compare.

Format (MSSanté reference, "National directory"): UTF-8, ``|``-separated, one row
per mailbox, the 31 columns of ``COLUMNS`` in that order, ``Dématérialisation`` as
``True``/``False``. The file has no creation date and no stable technical id: the
address is the key, so changes are found by comparing two successive extracts.

Implementation notes:

- Reading streams: one line at a time, never the whole file. The only state kept is
  the set of addresses seen (to reject duplicates), about 100 bytes per row.
- The format has no quoting or escaping, so a value holding ``|`` or a line end
  cannot be written; ``write_extract`` refuses it rather than corrupt the file.
- A bad line is reported as a ``RejectedLine`` (its 1-based line number, the header
  being line 1) and reading goes on; only a wrong header stops the read.
- Values are kept exactly as written (no trimming), except the address, which is
  lower-cased: addresses compare case-insensitively and it is the key.
- Repeated values (labels, codes, cities, names) are interned when read, so that the
  rows of a whole national file, held for a diff, share them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import TextIO

from mssante.domain.addresses import PATIENT_DOMAIN, parse_address
from mssante.domain.mailboxes import PROFESSIONAL_TYPES, MailboxType
from mssante.errors import InvalidAddress, MSSanteError

# MSSanté reference, "National directory": the 31 columns, in this exact order.
COLUMNS: tuple[str, ...] = (
    "Type de BAL",
    "Adresse BAL",
    "Type Identifiant PP",
    "Identifiant PP",
    "Identification nationale PP",
    "Type identifiant structure",
    "Identification Structure",
    "Service de rattachement",
    "Civilité d'exercice",
    "Nom d'exercice",
    "Prénom d'exercice",
    "Catégorie profession",
    "Libellé de catégorie profession",
    "Code Profession",
    "Libellé Profession",
    "Code savoir-faire",
    "Libellé savoir-faire",
    "Dématérialisation",
    "Raison Sociale structure BAL",
    "Enseigne commerciale structure BAL",
    "L2COMPLEMENTLOCALISATION structure BAL",
    "L3COMPLEMENTDISTRIBUTION structure BAL",
    "L4NUMEROVOIE structure BAL",
    "L4COMPLEMENTNUMEROVOIE structure BAL",
    "NL4TYPEVOIE structure BAL",
    "L4LIBELLEVOIE structure BAL",
    "L5LIEUDITMENTION structure BAL",
    "L6LIGNEACHEMINEMENT structure BAL",
    "Code postal structure BAL",
    "Département structure BAL",
    "Pays structure BAL",
)

SEPARATOR = "|"
BOM = "\ufeff"
TRUE, FALSE = "True", "False"  # MSSanté reference: Dématérialisation is True/False


class ExtractFormatError(MSSanteError):
    """The file is not an extract: its header is missing or differs from ``COLUMNS``."""


@dataclass(frozen=True, slots=True)
class ExtractRow:
    """One mailbox of the extract; fields in the order of ``COLUMNS``.

    Built directly, a row checks what the extract's key depends on: the type is a
    directory type (PER, ORG, APP, CAB; never PAT) and the address is valid, in the
    trust space's namespace, and is stored lower-cased.
    """

    mailbox_type: MailboxType  # Type de BAL
    address: str  # Adresse BAL
    pp_id_type: str  # Type Identifiant PP ("8" RPPS, "0" ADELI)
    pp_id: str  # Identifiant PP
    pp_national_id: str  # Identification nationale PP (idNatPs)
    structure_id_type: str  # Type identifiant structure ("1" FINESS, "3" SIRET)
    structure_id: str  # Identification Structure (idNatSt)
    service: str  # Service de rattachement
    civility: str  # Civilité d'exercice
    family_name: str  # Nom d'exercice
    given_name: str  # Prénom d'exercice
    profession_category: str  # Catégorie profession
    profession_category_label: str  # Libellé de catégorie profession
    profession_code: str  # Code Profession
    profession_label: str  # Libellé Profession
    skill_code: str  # Code savoir-faire
    skill_label: str  # Libellé savoir-faire
    digitization: bool  # Dématérialisation
    legal_name: str  # Raison Sociale structure BAL
    trade_name: str  # Enseigne commerciale structure BAL
    location_complement: str  # L2COMPLEMENTLOCALISATION structure BAL
    distribution_complement: str  # L3COMPLEMENTDISTRIBUTION structure BAL
    street_number: str  # L4NUMEROVOIE structure BAL
    street_number_complement: str  # L4COMPLEMENTNUMEROVOIE structure BAL
    street_type: str  # NL4TYPEVOIE structure BAL
    street_name: str  # L4LIBELLEVOIE structure BAL
    locality: str  # L5LIEUDITMENTION structure BAL
    routing_line: str  # L6LIGNEACHEMINEMENT structure BAL
    postal_code: str  # Code postal structure BAL
    department: str  # Département structure BAL
    country: str  # Pays structure BAL

    def __post_init__(self) -> None:
        object.__setattr__(self, "mailbox_type", directory_type(self.mailbox_type))
        object.__setattr__(self, "address", directory_address(self.address))

    def values(self) -> tuple[str, ...]:
        """The row's 31 values as written in the file, in the order of ``COLUMNS``."""
        return tuple(
            (TRUE if value else FALSE) if isinstance(value, bool) else str(value)
            for value in (getattr(self, name) for name in FIELD_NAMES))


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ExtractRow))
_ADDRESS = 1
_DIGITIZATION = 17
# Values (nearly) unique to a row: not worth interning.
_NOT_INTERNED = frozenset(FIELD_NAMES.index(name) for name in
                          ("address", "pp_id", "pp_national_id", "digitization"))
_INTERNED = tuple(i for i in range(len(FIELD_NAMES)) if i not in _NOT_INTERNED)

assert len(FIELD_NAMES) == len(COLUMNS)
assert FIELD_NAMES[_ADDRESS] == "address" and FIELD_NAMES[_DIGITIZATION] == "digitization"


def directory_type(value: str) -> MailboxType:
    """The mailbox type of a directory row, or ValueError.

    MSSanté reference: the directory's types are PER/ORG/APP/CAB; PAT never appears.
    """
    try:
        mailbox_type = MailboxType(value)
    except ValueError:
        raise ValueError(f"unknown mailbox type {value!r}") from None
    if mailbox_type not in PROFESSIONAL_TYPES:
        raise ValueError(f"mailbox type {value!r} is not allowed in the directory")
    return mailbox_type


def directory_address(value: str) -> str:
    """The address of a directory row, lower-cased, or InvalidAddress."""
    address = parse_address(value)
    if not address.in_trust_space_namespace:
        raise InvalidAddress(f"outside the trust space (*.mssante.fr): {value!r}")
    if address.domain == PATIENT_DOMAIN:
        raise InvalidAddress(f"a patient address is never in the directory: {value!r}")
    return address.key


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """A line that could not be read; ``line_number`` is 1-based, the header is line 1."""

    line_number: int
    reason: str
    text: str


def _strip_line_end(line: str) -> str:
    if line.endswith("\n"):
        line = line[:-1]
    if line.endswith("\r"):
        line = line[:-1]
    return line


def check_header(line: str) -> None:
    """Raise ExtractFormatError naming the first column that differs from ``COLUMNS``."""
    names = _strip_line_end(line.removeprefix(BOM)).split(SEPARATOR)
    for index, expected in enumerate(COLUMNS):
        if index >= len(names):
            raise ExtractFormatError(
                f"header: column {index + 1} {expected!r} is missing")
        if names[index] != expected:
            raise ExtractFormatError(
                f"header: column {index + 1} should be {expected!r}, found {names[index]!r}")
    if len(names) > len(COLUMNS):
        raise ExtractFormatError(
            f"header: unexpected column {len(COLUMNS) + 1} {names[len(COLUMNS)]!r}")


def parse_row(text: str) -> ExtractRow:
    """One data line (without its line end) as a row, or ValueError saying why not."""
    values = text.split(SEPARATOR)
    if len(values) != len(COLUMNS):
        raise ValueError(f"expected {len(COLUMNS)} columns, found {len(values)}")
    # The checks come in the order of the columns: type, address, Dématérialisation.
    mailbox_type = directory_type(values[0])
    try:
        address = directory_address(values[_ADDRESS])
    except InvalidAddress as exc:
        raise ValueError(f"invalid address: {exc}") from None
    digitization = values[_DIGITIZATION]
    if digitization not in (TRUE, FALSE):
        raise ValueError(f"Dématérialisation must be True or False, found {digitization!r}")
    intern = sys.intern
    for index in _INTERNED:
        values[index] = intern(values[index])
    return ExtractRow(mailbox_type, address, values[2], values[3], values[4], values[5], values[6],
                      values[7], values[8], values[9], values[10], values[11], values[12],
                      values[13], values[14], values[15], values[16], digitization == TRUE,
                      values[18], values[19], values[20], values[21], values[22], values[23],
                      values[24], values[25], values[26], values[27], values[28], values[29],
                      values[30])


def read_extract(lines: Iterable[str] | TextIO) -> Iterator[ExtractRow | RejectedLine]:
    """Stream an extract: a row per good line, a RejectedLine per bad one.

    ``lines`` is an open text file (UTF-8) or any iterable of lines, with or without
    their line ends (LF or CRLF). A UTF-8 byte order mark before the header is
    skipped. Empty lines at the end are ignored; an empty line followed by data is
    rejected. Raises ExtractFormatError if the header is missing or wrong.
    """
    iterator = iter(lines)
    header = next(iterator, None)
    if header is None:
        raise ExtractFormatError("empty file: no header line")
    check_header(header)
    first_seen: dict[str, int] = {}
    pending_empty: list[int] = []
    for line_number, line in enumerate(iterator, start=2):
        text = _strip_line_end(line)
        if not text:
            pending_empty.append(line_number)
            continue
        for empty in pending_empty:
            yield RejectedLine(empty, "empty line", "")
        pending_empty.clear()
        try:
            row = parse_row(text)
        except ValueError as exc:
            yield RejectedLine(line_number, str(exc), text)
            continue
        first = first_seen.setdefault(row.address, line_number)
        if first != line_number:
            yield RejectedLine(line_number, f"duplicate address {row.address!r}, first on "
                               f"line {first}", text)
            continue
        yield row


def format_row(row: ExtractRow) -> str:
    """A row as one line of the file (without its line end), or ValueError.

    The format has no escaping: a value holding ``|`` or a line end is refused.
    """
    values = row.values()
    for name, value in zip(COLUMNS, values, strict=True):
        if SEPARATOR in value or "\n" in value or "\r" in value:
            raise ValueError(f"{row.address}: column {name!r} holds '|' or a line end, "
                             "which the extract cannot represent")
    return SEPARATOR.join(values)


def write_extract(rows: Iterable[ExtractRow], out: TextIO) -> int:
    """Write the header and ``rows`` with LF line ends; return the number of rows.

    Open ``out`` with ``encoding="utf-8", newline=""`` so that the line ends are kept.
    """
    out.write(SEPARATOR.join(COLUMNS) + "\n")
    count = 0
    for row in rows:
        out.write(format_row(row) + "\n")
        count += 1
    return count


@dataclass
class ExtractDiff:
    """What changed between two extracts, keyed by address."""

    created: list[ExtractRow] = field(default_factory=list)
    changed: list[tuple[ExtractRow, ExtractRow]] = field(default_factory=list)  # (old, new)
    removed: list[ExtractRow] = field(default_factory=list)


def diff_extracts(old: Iterable[ExtractRow], new: Iterable[ExtractRow]) -> ExtractDiff:
    """Compare two successive extracts by address (MSSanté reference: no stable id).

    Holds the old rows in memory (one dict entry per row) and streams the new ones.
    ``created`` and ``changed`` come in the order of ``new``, ``removed`` in the order
    of ``old``. A duplicate address in either input raises ValueError.
    """
    previous: dict[str, ExtractRow] = {}
    for row in old:
        if row.address in previous:
            raise ValueError(f"duplicate address in the old extract: {row.address}")
        previous[row.address] = row
    diff = ExtractDiff()
    seen: set[str] = set()
    for row in new:
        if row.address in seen:
            raise ValueError(f"duplicate address in the new extract: {row.address}")
        seen.add(row.address)
        before = previous.pop(row.address, None)
        if before is None:
            diff.created.append(row)
        elif before != row:
            diff.changed.append((before, row))
    diff.removed.extend(previous.values())
    return diff
