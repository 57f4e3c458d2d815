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


# --- integration of the documents by the receiving software -----------------------------
# The MDN a receiving program sends once it has integrated (or failed to integrate) the
# documents of a message (ANS, MSSanté: accusés d'intégration; RFC 8098): disposition
# ``processed`` on success, ``processed/Error: <code>^<label>`` otherwise, and then the
# subject ``[KO Intégration système !][<code>] <original subject>``.

WRONG_VERSION = 900  # the message's XDM version is not one the program reads
AUTHOR_NOT_ALLOWED = 901  # the document's author may not send to this program
UNKNOWN_PATIENT = 902  # the patient is not known to the program
NO_INS = 903  # the document carries no INS
INS_MISMATCH = 904  # the INS differs between documents, metadata and CDA
INCOMPLETE_TRAITS = 905  # an INS without its four identity traits
OTHER_ERROR = 906  # any other reason the documents could not be integrated

INTEGRATION_ERRORS: dict[int, str] = {
    WRONG_VERSION: "Version non supportée",
    AUTHOR_NOT_ALLOWED: "Auteur non autorisé",
    UNKNOWN_PATIENT: "Patient inconnu",
    NO_INS: "INS absent du document",
    INS_MISMATCH: "INS incohérent",
    INCOMPLETE_TRAITS: "Traits d'identité de l'INS incomplets",
    OTHER_ERROR: "Autre erreur",
}
XDM_VERSION = "1.0"
# what an integration receipt's disposition modifier (or Error field) says of a failure:
# ``Error: <code>^<label>``, the label in ASCII as the MDN carries it
_INTEGRATION_ERROR = re.compile(r"(?:Error:\s*)?(?P<code>\d{3})\^(?P<label>[^\r\n]{0,200})",
                                re.I)
_XDM_SUBJECT = re.compile(r"XDM/(?P<version>[^/\s]{1,16})/")


def subject_xdm_version(subject: str) -> str | None:
    """The XDM version a subject announces (``XDM/1.0/DDM+…`` → ``1.0``), or None."""
    found = _XDM_SUBJECT.match(subject.strip())
    return found.group("version") if found else None


def integration_error_subject(code: int, subject: str) -> str:
    """``[KO Intégration système !][<code>] <original subject>``."""
    if code not in INTEGRATION_ERRORS:
        raise PolicyViolation(f"{code} is not an integration error code (900 to 906)")
    return f"[KO Intégration système !][{code}] {subject.strip()}"


def integration_failure(text: str) -> tuple[int, str] | None:
    """The code and label of a KO integration receipt (``processed/Error: 904^INS
    incoherent``: the modifier or ``Error:`` field of the MDN), or None when ``text``
    reports no failure. The label is this project's for a known code (900–906, with
    its accents), else the one written."""
    found = _INTEGRATION_ERROR.search(text)
    if found is None:
        return None
    code = int(found.group("code"))
    return code, INTEGRATION_ERRORS.get(code, found.group("label").strip())
