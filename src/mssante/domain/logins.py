"""How each kind of person may log in: the operator's password policy.

In MSSanté a professional logs in with Pro Santé Connect (e-CPS, CPS card) or the
certificate of their card, not with a password (Référentiel #2, "Authentification
des utilisateurs"). An operator may therefore disable passwords per kind of person
(``[psc.passwords]`` in operator.toml); the same rule then holds at IMAP, submission
and the web, which all ask ``PasswordPolicy.check``.

The policy is asked only after the password was found right: a stranger learns
nothing about who exists, or what kind of person they are, from the refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from mssante.domain.mailboxes import PersonKind
from mssante.errors import PolicyViolation


class PasswordUse(StrEnum):
    ALLOWED = "allowed"
    DISABLED = "disabled"


# what a person of each kind can use instead, named in the refusal
_INSTEAD = {
    PersonKind.HEALTH: "Pro Santé Connect (XOAUTH2 or OAUTHBEARER with your e-CPS or CPS "
                       "card) or your CPS card's certificate (EXTERNAL)",
    PersonKind.SOCIAL: "Pro Santé Connect (XOAUTH2 or OAUTHBEARER) or your card's "
                       "certificate (EXTERNAL)",
    PersonKind.STAFF: "Pro Santé Connect (XOAUTH2 or OAUTHBEARER) or your card's "
                      "certificate (EXTERNAL)",
    PersonKind.PATIENT: "the login your operator gave you",
}

_NAMES = {PersonKind.HEALTH: "health professionals", PersonKind.SOCIAL:
          "social-sector professionals", PersonKind.STAFF: "staff",
          PersonKind.PATIENT: "patients"}


class PasswordsDisabled(PolicyViolation):
    """The password was right, but this operator does not let this kind of person log
    in with one; the message says what to use instead."""


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """The kinds of person who may not log in with a password (none by default)."""

    disabled: frozenset[PersonKind] = frozenset()

    @classmethod
    def from_settings(cls, uses: Mapping[str, str]) -> PasswordPolicy:
        """From ``{kind: "allowed" | "disabled"}``; raises ValueError naming the bad
        kind or use (kinds: the PersonKind values)."""
        disabled = set()
        for kind, use in uses.items():
            try:
                person_kind = PersonKind(kind)
            except ValueError:
                raise ValueError(
                    f"{kind!r} is not a kind of person (known: "
                    f"{', '.join(k.value for k in PersonKind)})") from None
            try:
                if PasswordUse(use) is PasswordUse.DISABLED:
                    disabled.add(person_kind)
            except ValueError:
                raise ValueError(f"{kind}: {use!r} is neither \"allowed\" nor \"disabled\"") \
                    from None
        return cls(frozenset(disabled))

    def allows(self, kind: PersonKind) -> bool:
        return kind not in self.disabled

    def check(self, kind: PersonKind) -> None:
        """Refuse a password login of a person of ``kind`` when the policy disables it."""
        if kind in self.disabled:
            raise PasswordsDisabled(
                f"Passwords are disabled here for {_NAMES[kind]}: log in with "
                f"{_INSTEAD[kind]}")
