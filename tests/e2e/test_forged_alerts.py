"""Threat: anyone in the trust space writes the alert header to have their message
shown first as a health alert. Only the mailboxes an operator lists as authorities
([operator] alert_authorities) get the $Alerte keyword (domain/alerts.py)."""

from __future__ import annotations

import smtplib

import pytest

from tests.conftest import RunningEnvironment
from tests.e2e.mail import message, send, submission, unique

DUPONT = "dupont@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
CARDIO = "cardiologie@ch-xyz.mssante.fr"
AUTHORITY = "alertes-sanitaires@ch-xyz.mssante.fr"


def test_a_professional_writing_the_alert_header_gets_no_keyword(
        environment: RunningEnvironment) -> None:
    subject = unique("ALERTE SANITAIRE : cliquez ici")
    forged = message(DUPONT, [MARTIN, CARDIO], subject, X_MSS_ALERTE="20261207T000000-00000000",
                     Priority="urgent", Importance="high")
    assert send(environment, DUPONT, forged) == {}
    for address in (MARTIN, CARDIO):  # another operator's mailbox, and one of the same
        stored = environment.wait_message(address, subject)
        assert "$Alerte" not in stored.flags


def test_nobody_else_sends_as_the_authority(environment: RunningEnvironment) -> None:
    forged = message(AUTHORITY, MARTIN, unique("Alerte"), X_MSS_ALERTE="x")
    with submission(environment, "ch-xyz.mssante.fr", DUPONT) as smtp, \
            pytest.raises(smtplib.SMTPSenderRefused):
        smtp.send_message(forged)
    forged = message(DUPONT, MARTIN, unique("Alerte"), X_MSS_ALERTE="x")
    forged.replace_header("From", AUTHORITY)
    with submission(environment, "ch-xyz.mssante.fr", DUPONT) as smtp, \
            pytest.raises(smtplib.SMTPDataError):
        smtp.send_message(forged, from_addr=DUPONT)
