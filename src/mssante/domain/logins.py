"""How each kind of person may log in: the operator's password policy.

In MSSanté a professional logs in with Pro Santé Connect (e-CPS, CPS card) or the
certificate of their card, not with a password (Référentiel #2, "Authentification
des utilisateurs"). An operator may therefore disable passwords per kind of person
(``[psc.passwords]`` in operator.toml); the same rule then holds at IMAP, submission
and the web, which all ask ``PasswordPolicy.check``.

The policy is asked only after the password was found right: a stranger learns
nothing about who exists, or what kind of person they are, from the refusal.

Which password opens which way in (``check_password_way``): the webmail can ask a
second factor after the password, a mail client at IMAP or submission cannot. So a
person with a second factor (TOTP enrolled, or required of their kind) gives their
account password at the web only, and each mail client an *application password*
(auth/apppasswords.py), which opens IMAP and submission and never the web. Otherwise
a stolen account password would open the mailbox through IMAP, second factor or not.
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


# -- which password for which way in -----------------------------------------------------


class WayIn(StrEnum):
    WEB = "web"  # the webmail's login form, followed by the second factor
    MAIL_CLIENT = "mail client"  # IMAP and submission: a password alone, nothing after it


class PasswordKind(StrEnum):
    ACCOUNT = "account"  # the person's own password (given by the operator)
    APPLICATION = "application"  # generated for one mail client, revocable one by one


def password_kinds(way: WayIn) -> tuple[PasswordKind, ...]:
    """The passwords a login by ``way`` may be made with: an application password
    opens a mail client's session only, never the web (where it is not even looked
    at: typed there, it is a wrong password)."""
    if way is WayIn.WEB:
        return (PasswordKind.ACCOUNT,)
    return (PasswordKind.APPLICATION, PasswordKind.ACCOUNT)


class AppPasswordRequired(PolicyViolation):
    """The account password was right, but this person has a second factor, which a
    mail client cannot give: they must use an application password there."""


# Reply text is ASCII (RFC 9051 §9, RFC 5321 §4.2): it names the webmail page in French
# without its accents.
_CREATE_ONE = ("Create an application password for this mail client (webmail: Mots de "
               "passe d'application) and log in with it here")


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


def check_password_way(kind: PasswordKind, way: WayIn, person: LoginFactors,
                       second_factors: SecondFactorPolicy) -> None:
    """Refuse a right password of ``kind`` given by ``way`` where it does not open that
    way (asked only once the password was found right, as the password policy; which
    kinds are looked at for a way at all is ``password_kinds``): the account password
    of a person with TOTP (enrolled, or required of their kind by
    ``[psc.second_factor]``) opens the web only, where the code follows; at IMAP and
    submission it is refused with ``AppPasswordRequired``, which says what to do.

    The patient's one-time code by mail (``SecondFactor.EMAIL_CODE``) does not take
    the account password away from mail clients: it is a check of the web's login
    the operator turns on for all patients by default, not a factor the patient chose.
    """
    if kind is not PasswordKind.ACCOUNT or way is not WayIn.MAIL_CLIENT:
        return
    if person.totp_enrolled:
        raise AppPasswordRequired("Your account has a second factor (TOTP): its password "
                                  f"opens the webmail only. {_CREATE_ONE}")
    if person.kind in second_factors.totp_required:
        raise AppPasswordRequired(
            f"Your operator requires a second factor (TOTP) for {_NAMES[person.kind]}: "
            f"your password opens the webmail only, with it. {_CREATE_ONE}")


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
