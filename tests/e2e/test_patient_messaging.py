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
    # 1. the patient cannot start: the cardiology service has not written to them yet
    with submission(environment, "patient.mssante.fr", PATIENT) as smtp:
        smtp.mail(PATIENT)
        code, text = smtp.rcpt(CARDIO)
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
    # by its Message-ID: other tests send "[FIN]" to this patient too
    environment.wait_for(lambda: any(m.message_id == fin["Message-ID"]
                                     for m in environment.messages(PATIENT)),
                         20, "this conversation's [FIN] at the patient")

    # 6. the patient can no longer reply in it
    late = message(PATIENT, DUPONT, "Re: encore une question", In_Reply_To=fin["Message-ID"],
                   References=f"{first['Message-ID']} {fin['Message-ID']}")
    assert reply_refused(environment, late, DUPONT)


def reply_refused(env, msg, to: str) -> bool:
    """Refused at RCPT (no open conversation at all with ``to``) or at the end of DATA
    (this thread is closed); the other tests may have left other threads open."""
    try:
        patient_send(env, msg, [to])
    except smtplib.SMTPRecipientsRefused as exc:
        return b"closed" in exc.recipients[to][1]
    except smtplib.SMTPDataError as exc:
        return exc.smtp_code == 550 and b"closed this conversation" in exc.smtp_error
    return False


def test_x_mss_mes_fin_closes_too(environment) -> None:
    subject = unique("Résultats")
    first = message(MARTIN, PATIENT, subject)
    send(environment, MARTIN, first)
    environment.wait_message(PATIENT, subject)
    closing = message(MARTIN, PATIENT, unique("Bonne continuation"), X_MSS_MES="FIN",
                      In_Reply_To=first["Message-ID"], References=first["Message-ID"])
    send(environment, MARTIN, closing)
    environment.wait_message(PATIENT, closing["Subject"])
    reply = message(PATIENT, MARTIN, "Re: merci", In_Reply_To=closing["Message-ID"],
                    References=f"{first['Message-ID']} {closing['Message-ID']}")
    assert reply_refused(environment, reply, MARTIN)


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
