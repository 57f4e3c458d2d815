"""Which second factor follows a right password (domain/logins.py), and what a
personal address may be."""

from __future__ import annotations

import pytest

from mssante.domain.logins import (
    LoginFactors,
    SecondFactor,
    SecondFactorPolicy,
    SecondFactorUnavailable,
    parse_personal_address,
)
from mssante.domain.mailboxes import PersonKind
from mssante.errors import InvalidAddress

STAFF_TOTP = SecondFactorPolicy.from_settings({"staff": "totp", "professional": "none"})


def test_from_settings() -> None:
    assert STAFF_TOTP.totp_required == {PersonKind.STAFF}
    assert SecondFactorPolicy.from_settings({}) == SecondFactorPolicy()
    with pytest.raises(ValueError, match="'nurse' is not a kind of person"):
        SecondFactorPolicy.from_settings({"nurse": "totp"})
    with pytest.raises(ValueError, match="neither \"none\" nor \"totp\""):
        SecondFactorPolicy.from_settings({"staff": "sms"})


@pytest.mark.parametrize(("person", "factor"), [
    (LoginFactors(PersonKind.HEALTH), None),
    (LoginFactors(PersonKind.HEALTH, totp_enrolled=True), SecondFactor.TOTP),
    (LoginFactors(PersonKind.STAFF, totp_enrolled=True), SecondFactor.TOTP),
    (LoginFactors(PersonKind.PATIENT, login_code=False, personal_address="p@example.org"),
     None),
    (LoginFactors(PersonKind.PATIENT, login_code=True, personal_address="p@example.org"),
     SecondFactor.EMAIL_CODE),
    (LoginFactors(PersonKind.PATIENT, totp_enrolled=True, login_code=True,
                  personal_address="p@example.org"), SecondFactor.TOTP),
])
def test_the_factor_that_follows_a_password(person: LoginFactors,
                                            factor: SecondFactor | None) -> None:
    assert STAFF_TOTP.needed(person) is factor


def test_a_needed_factor_the_person_lacks_refuses_the_login() -> None:
    with pytest.raises(SecondFactorUnavailable, match="requires an authenticator"):
        STAFF_TOTP.needed(LoginFactors(PersonKind.STAFF))
    with pytest.raises(SecondFactorUnavailable, match="no personal address"):
        STAFF_TOTP.needed(LoginFactors(PersonKind.PATIENT, login_code=True))


def test_a_personal_address_is_outside_the_trust_space() -> None:
    assert str(parse_personal_address(" <Eve.Noir@Example.ORG> ")) == "Eve.Noir@example.org"
    for inside in ("eve@patient.mssante.fr", "eve@mssante.fr", "x@ch-xyz.MSSANTE.fr"):
        with pytest.raises(InvalidAddress, match="outside the trust space"):
            parse_personal_address(inside)
    for bad in ("eve", "eve@localhost", "eve@@example.org", "\"e v\"@example.org"):
        with pytest.raises(InvalidAddress):
            parse_personal_address(bad)
