"""Who authenticated, for IMAP and SMTP submission alike.

A person logs in with a login and password (``passwordlogin.py``) or the certificate
of their card (``certlogin.py``); a program with its organisation certificate, bound
to an APP mailbox. Either way the servers receive one ``Identity``; what it may use
or send as is asked of the store at each command, so that a grant or a revocation
counts at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from mssante.domain.mailboxes import PersonKind

PROGRAM = "program"  # the kind of a program's identity (an APP mailbox's certificate)


@dataclass(frozen=True, slots=True)
class Identity:
    """A person (``login``, ``kind`` a PersonKind value) or a program (``login`` its
    certificate's subject DN, ``kind`` PROGRAM, ``app`` the APP mailbox it is bound to)."""

    login: str
    kind: str
    app: str | None = None

    @property
    def is_program(self) -> bool:
        return self.kind == PROGRAM

    @property
    def is_patient(self) -> bool:
        return self.kind == PersonKind.PATIENT.value
