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

from mssante.domain.addresses import Address, parse_address
from mssante.domain.mailboxes import PersonKind
from mssante.errors import InvalidAddress, PolicyViolation


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


def kinds_with(uses: Mapping[str, str], values: type[StrEnum], wanted: StrEnum
               ) -> frozenset[PersonKind]:
    """The kinds of person whose setting in ``uses`` (``{kind: value}``, kinds the
    PersonKind values) is ``wanted``; ValueError naming a bad kind or value."""
    found = set()
    for kind, use in uses.items():
        try:
            person_kind = PersonKind(kind)
        except ValueError:
            raise ValueError(
                f"{kind!r} is not a kind of person (known: "
                f"{', '.join(k.value for k in PersonKind)})") from None
        try:
            value = values(use)
        except ValueError:
            known = " nor ".join(f'"{v.value}"' for v in values)
            raise ValueError(f"{kind}: {use!r} is neither {known}") from None
        if value is wanted:
            found.add(person_kind)
    return frozenset(found)


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
        return cls(kinds_with(uses, PasswordUse, PasswordUse.DISABLED))

    def allows(self, kind: PersonKind) -> bool:
        return kind not in self.disabled

    def check(self, kind: PersonKind) -> None:
        """Refuse a password login of a person of ``kind`` when the policy disables it."""
        if kind in self.disabled:
            raise PasswordsDisabled(
                f"Passwords are disabled here for {_NAMES[kind]}: log in with "
                f"{_INSTEAD[kind]}")


# -- second factors ---------------------------------------------------------------------
#
# A password login at the web may need a second factor: a TOTP code from an
# authenticator application (RFC 6238), which the operator can require per kind of
# person (``[psc.second_factor]``) and which anyone enrolled uses anyway; or, for a
# patient, a one-time code sent to the personal address they registered, unless their
# operator turned it off for them. Pro Santé Connect and card certificates are
# already strong authentication: no second factor is asked after them.


class SecondFactor(StrEnum):
    TOTP = "totp"  # a code of the person's authenticator application (RFC 6238)
    EMAIL_CODE = "email_code"  # a one-time code sent to the patient's personal address


class SecondFactorUse(StrEnum):
    NONE = "none"  # not required (a person enrolled in TOTP still uses it)
    TOTP = "totp"  # required: a password login without TOTP is refused


class SecondFactorUnavailable(PolicyViolation):
    """A second factor is needed but this person has none to give (not enrolled in
    TOTP, no personal address): the login is refused, the message says why."""


@dataclass(frozen=True, slots=True)
class LoginFactors:
    """What the store knows of a person that decides their second factor."""

    kind: PersonKind
    totp_enrolled: bool = False
    login_code: bool = False  # a patient's one-time code by mail is on
    personal_address: str | None = None


@dataclass(frozen=True, slots=True)
class SecondFactorPolicy:
    """The kinds of person whose password logins must be followed by TOTP."""

    totp_required: frozenset[PersonKind] = frozenset()

    @classmethod
    def from_settings(cls, uses: Mapping[str, str]) -> SecondFactorPolicy:
        """From ``{kind: "none" | "totp"}``; raises ValueError naming the bad entry."""
        return cls(kinds_with(uses, SecondFactorUse, SecondFactorUse.TOTP))

    def needed(self, person: LoginFactors) -> SecondFactor | None:
        """The second factor a right password must be followed by (None: none).

        TOTP when the person is enrolled, or when their kind requires it (not enrolled
        then: refused); else, for a patient whose one-time code is on, the code sent to
        their personal address (none registered: refused, never let through)."""
        if person.totp_enrolled:
            return SecondFactor.TOTP
        if person.kind in self.totp_required:
            raise SecondFactorUnavailable(
                f"Your operator requires an authenticator application (TOTP) for "
                f"{_NAMES[person.kind]}: ask them to enrol you")
        if person.kind is PersonKind.PATIENT and person.login_code:
            if not person.personal_address:
                raise SecondFactorUnavailable(
                    "A one-time code is needed to log in, and no personal address is "
                    "registered to send it to: ask your operator")
            return SecondFactor.EMAIL_CODE
        return None


def parse_personal_address(text: str) -> Address:
    """A patient's personal address (where one-time codes and new-message notices go):
    an ordinary mail address *outside* the trust space. An MSSanté address is refused:
    the notices leave through a relay outside the trust space, and a patient's own
    MSSanté mailbox is where the messages already are. Raises InvalidAddress."""
    address = parse_address(text)
    if address.in_trust_space_namespace:
        raise InvalidAddress(
            f"{address}: a personal address is outside the trust space (not *.mssante.fr)")
    return address
