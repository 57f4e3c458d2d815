"""Patient messaging: only professionals start and close; the patient can only reply."""

from __future__ import annotations

import smtplib

import pytest

from tests.e2e.mail import message, send, submission, unique

DUPONT = "dupont@ch-xyz.mssante.fr"
CARDIO = "cardiologie@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
PATIENT = "279035121518989@patient.mssante.fr"


def patient_send(env, msg, to: list[str]) -> None:
    with submission(env, "patient.mssante.fr", PATIENT) as smtp:
        smtp.send_message(msg, to_addrs=to)


def test_conversation_lifecycle(environment) -> None:
    # 1. the patient cannot start: nobody wrote to them yet from medecin.mssante.fr
    with submission(environment, "patient.mssante.fr", PATIENT) as smtp:
        smtp.mail(PATIENT)
        code, text = smtp.rcpt(MARTIN)
    assert code == 550 and b"has not written to you" in text

    # 2. the doctor starts a conversation, with the service as Reply-To
    subject = unique("Préparation de votre hospitalisation")
    first = message(DUPONT, PATIENT, subject, Reply_To=CARDIO)
    send(environment, DUPONT, first)
    environment.wait_message(PATIENT, subject)

    # 3. the patient replies to the doctor, and to the Reply-To address
    for to in (DUPONT, CARDIO):
        reply_subject = unique(f"Re: {subject}")
        reply = message(PATIENT, to, reply_subject, In_Reply_To=first["Message-ID"],
                        References=first["Message-ID"])
        patient_send(environment, reply, [to])
        environment.wait_message(to, reply_subject)

    # 4. a message that is not a reply is refused, even to the doctor
    with pytest.raises(smtplib.SMTPDataError) as info:
        patient_send(environment, message(PATIENT, DUPONT, "nouvelle question"), [DUPONT])
    assert info.value.smtp_code == 550 and b"not a reply" in info.value.smtp_error

    # 5. the doctor closes the conversation with the subject [FIN]
    fin = message(DUPONT, PATIENT, "[FIN]", In_Reply_To=first["Message-ID"],
                  References=first["Message-ID"])
    send(environment, DUPONT, fin)
    environment.wait_message(PATIENT, "[FIN]")

    # 6. the patient can no longer reply in it
    assert patient_refused(environment, DUPONT) == (550, True)


def patient_refused(env, to: str) -> tuple[int, bool]:
    with submission(env, "patient.mssante.fr", PATIENT) as smtp:
        smtp.mail(PATIENT)
        code, text = smtp.rcpt(to)
    return code, b"closed the conversation" in text


def test_x_mss_mes_fin_closes_too(environment) -> None:
    subject = unique("Résultats")
    first = message(MARTIN, PATIENT, subject)
    send(environment, MARTIN, first)
    environment.wait_message(PATIENT, subject)
    closing = message(MARTIN, PATIENT, unique("Bonne continuation"), X_MSS_MES="FIN",
                      In_Reply_To=first["Message-ID"], References=first["Message-ID"])
    send(environment, MARTIN, closing)
    environment.wait_message(PATIENT, closing["Subject"])
    assert patient_refused(environment, MARTIN) == (550, True)


def test_patient_cannot_write_to_patient_or_outside(environment) -> None:
    with submission(environment, "patient.mssante.fr", PATIENT) as smtp:
        smtp.mail(PATIENT)
        code, text = smtp.rcpt("180127512345647@patient.mssante.fr")
        assert code == 550 and b"another patient" in text
        code, text = smtp.rcpt("ami@gmail.com")
        assert code == 550


def test_professional_to_unknown_or_invalid_patient(environment) -> None:
    with submission(environment, "ch-xyz.mssante.fr", DUPONT) as smtp:
        smtp.mail(DUPONT)
        code, text = smtp.rcpt("279035121518988@patient.mssante.fr")  # bad INS key
    assert code == 550 and b"wrong INS key" in text
