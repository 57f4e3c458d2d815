"""Which password opens which way in (domain/logins.py): the account password of a
person with TOTP opens the web only; an application password opens mail clients
only; nothing changes for anyone else."""

from __future__ import annotations

import pytest

from mssante.domain.logins import (
    AppPasswordRequired,
    LoginFactors,
    PasswordKind,
    SecondFactorPolicy,
    WayIn,
    check_password_way,
    password_kinds,
)
from mssante.domain.mailboxes import PersonKind

STAFF_TOTP = SecondFactorPolicy(frozenset({PersonKind.STAFF}))


def test_application_passwords_open_mail_clients_only() -> None:
    assert password_kinds(WayIn.WEB) == (PasswordKind.ACCOUNT,)
    assert PasswordKind.APPLICATION in password_kinds(WayIn.MAIL_CLIENT)
    assert PasswordKind.ACCOUNT in password_kinds(WayIn.MAIL_CLIENT)


@pytest.mark.parametrize(("person", "policy"), [
    (LoginFactors(PersonKind.HEALTH, totp_enrolled=True), SecondFactorPolicy()),
    (LoginFactors(PersonKind.STAFF), STAFF_TOTP),
    (LoginFactors(PersonKind.PATIENT, totp_enrolled=True), SecondFactorPolicy()),
])
def test_the_account_password_of_a_totp_person_opens_the_web_only(
        person: LoginFactors, policy: SecondFactorPolicy) -> None:
    check_password_way(PasswordKind.ACCOUNT, WayIn.WEB, person, policy)
    check_password_way(PasswordKind.APPLICATION, WayIn.MAIL_CLIENT, person, policy)
    with pytest.raises(AppPasswordRequired) as refused:
        check_password_way(PasswordKind.ACCOUNT, WayIn.MAIL_CLIENT, person, policy)
    text = str(refused.value)
    assert text.isascii() and "Mots de passe d'application" in text
    assert "Create an application password" in text


@pytest.mark.parametrize("person", [
    LoginFactors(PersonKind.HEALTH), LoginFactors(PersonKind.SOCIAL),
    # a patient's code by mail is the web's check, not a factor taken to mail clients
    LoginFactors(PersonKind.PATIENT, login_code=True, personal_address="p@example.org"),
])
def test_without_totp_the_account_password_opens_mail_clients(person: LoginFactors) -> None:
    check_password_way(PasswordKind.ACCOUNT, WayIn.MAIL_CLIENT, person, STAFF_TOTP)
