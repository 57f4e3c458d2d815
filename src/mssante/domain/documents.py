"""Clinical documents in a message: the rules MSSanté adds to the mail that carries them.

- One message concerns one patient; its documents travel in one ``IHE_XDM.ZIP``
  attachment (IHE ITI TF-1 §16 XDM), each CDA with its PDF rendering.
- Subject: ``XDM/1.0/DDM+<label> <NOM> <prénom> <birth date>``; clients hide the prefix.
- ``X-MSS-CODECDA`` (Réf#2 §3.8.1, ECO.2.4.1): the ``code`` of each CDA of the archive,
  comma-separated (``34112-3,PRESC-BIO``); absent without CDA.
- ``X-MSS-INS`` (Réf#2 §3.8.2, ECO.2.4.2): ``O`` if the archive holds a qualified INS,
  else ``N``; absent without CDA.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mssante.errors import PolicyViolation

XDM_ARCHIVE_NAME = "IHE_XDM.ZIP"
XDM_SUBJECT_PREFIX = "XDM/1.0/DDM+"
CODECDA_HEADER = "X-MSS-CODECDA"
INS_HEADER = "X-MSS-INS"

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_FIELD_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def codecda_value(codes: Sequence[str]) -> str | None:
    """The ``X-MSS-CODECDA`` value for the CDA documents' codes, in archive order (a code
    repeated by two documents is written twice, as there are two documents); None
    without CDA. A code that is not a plain token (a comma, a space) is refused: it
    would split into two values."""
    for code in codes:
        if not _CODE.match(code):
            raise PolicyViolation(f"a CDA document code must be a plain token, not {code!r}")
    return ",".join(codes) if codes else None


def ins_value(has_cda: bool, qualified: bool) -> str | None:
    """The ``X-MSS-INS`` value: ``O`` with a qualified INS, ``N`` without, None (no
    header) when the archive holds no CDA."""
    if not has_cda:
        return None
    return "O" if qualified else "N"


def document_subject(label: str, family_name: str, given_name: str, birth_date: str) -> str:
    """``XDM/1.0/DDM+<label> <NOM> <prénom> <birth date>``: the family name in capitals,
    the birth date as given (``DD/MM/YYYY`` in the ANS samples)."""
    parts = [label.strip(), family_name.strip().upper(), given_name.strip(),
             birth_date.strip()]
    text = " ".join(part for part in parts if part)
    if _FIELD_CONTROL.search(text):
        raise PolicyViolation("a control character in the subject of a document message")
    if not label.strip():
        raise PolicyViolation("a document message's subject needs the document's label")
    return XDM_SUBJECT_PREFIX + text
