"""Who authenticated, for IMAP and SMTP submission alike.

A person logs in with a login and password (``passwordlogin.py``) or the certificate
of their card (``certlogin.py``); a program with its organisation certificate, bound
to an APP mailbox; a professional may also give a Pro Santé Connect access token
(``psctoken.py``), and the identity then remembers that PSC session, which can end
(``pscsessions.py``). Either way the servers receive one ``Identity``; what it may use
or send as is asked of the store at each command, so that a grant or a revocation
counts at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from mssante.domain.mailboxes import PersonKind

PROGRAM = "program"  # the kind of a program's identity (an APP mailbox's certificate)


@dataclass(frozen=True, slots=True)
class PscLogin:
    """The Pro Santé Connect session an access token stood for at login: its ``sid``,
    the professional (``subject``, the idNatPs) and when the token was issued."""

    subject: str
    sid: str = ""
    issued_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Identity:
    """A person (``login``, ``kind`` a PersonKind value) or a program (``login`` its
    certificate's subject DN, ``kind`` PROGRAM, ``app`` the APP mailbox it is bound to)."""

    login: str
    kind: str
    app: str | None = None
    psc: PscLogin | None = None  # logged in with a PSC token: the session it ends with
    # logged in with this application password (auth/apppasswords.py): it ends with it
    app_password: int | None = None

    @property
    def is_program(self) -> bool:
        return self.kind == PROGRAM

    @property
    def is_patient(self) -> bool:
        return self.kind == PersonKind.PATIENT.value
