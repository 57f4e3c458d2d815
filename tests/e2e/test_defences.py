"""Attacks on the rules through the message itself and through the session."""

from __future__ import annotations

import smtplib

import pytest

from tests.e2e.mail import message, send, submission, unique

DUPONT = "dupont@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
PATIENT = "279035121518989@patient.mssante.fr"


def raw_data(env, login: str, sender: str, rcpt: str, data: bytes) -> tuple[int, bytes]:
    with submission(env, login.rpartition("@")[2], login) as smtp:
        smtp.mail(sender)
        smtp.rcpt(rcpt)
        return smtp.data(data)


def test_a_from_hidden_behind_a_control_character_is_refused(environment) -> None:
    data = (b"X-A: a\x1c\r\nFrom: Dr Martin <jean.martin@medecin.mssante.fr>\r\n"
            b"Subject: forged\r\n\r\nbody\r\n")
    code, text = raw_data(environment, DUPONT, DUPONT, MARTIN, data)
    assert code == 550 and b"5.6.0" in text and b"control character" in text


def test_two_from_fields_are_refused(environment) -> None:
    data = (b"From: <dupont@ch-xyz.mssante.fr>\r\nFrom: <jean.martin@medecin.mssante.fr>\r\n"
            b"Subject: two\r\n\r\nbody\r\n")
    code, text = raw_data(environment, DUPONT, DUPONT, MARTIN, data)
    assert code == 550 and b"more than one From" in text


def test_a_bare_cr_cannot_add_a_header_at_the_next_hop(environment) -> None:
    subject = unique("cr")
    data = (f"From: <{DUPONT}>\r\nSubject: {subject}\rFrom: <{MARTIN}>\r\n\r\nbody\r\n").encode()
    code, text = raw_data(environment, DUPONT, DUPONT, MARTIN, data)
    # the CR ends the Subject line: the second From is seen here, and refused
    assert code == 550 and b"more than one From" in text


def test_too_many_errors_close_the_connection(environment) -> None:
    with submission(environment, "ch-xyz.mssante.fr", DUPONT) as smtp:
        smtp.mail(DUPONT)
        codes = [smtp.rcpt(f"x{i}@gmail.com")[0] for i in range(20)]
        assert set(codes) == {550}
        code, text = smtp.noop()  # the server's parting words, sent after the 20th error
        assert code == 421 and b"Too many errors" in text
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.noop()


def test_auth_login_mechanism(environment) -> None:
    with submission(environment, "ch-xyz.mssante.fr") as smtp:
        smtp.user, smtp.password = DUPONT, environment.password(DUPONT)
        code, _ = smtp.auth("LOGIN", smtp.auth_login)
    assert code == 235


def test_another_professional_cannot_close_or_join_a_conversation(environment) -> None:
    subject = unique("Suivi")
    first = message(DUPONT, PATIENT, subject)
    send(environment, DUPONT, first)
    environment.wait_message(PATIENT, subject)
    # Dr Martin writes "[FIN]" into Dr Dupont's thread: that opens his own, closes nothing
    intruder = message(MARTIN, PATIENT, "[FIN]", In_Reply_To=first["Message-ID"],
                       References=first["Message-ID"])
    send(environment, MARTIN, intruder)
    # this very message, by its Message-ID: a "[FIN]" left by another test must not do
    environment.wait_for(lambda: any(m.message_id == intruder["Message-ID"] for m in
                                     environment.messages(PATIENT)), what="the intruder")
    reply_subject = unique(f"Re: {subject}")
    reply = message(PATIENT, DUPONT, reply_subject, In_Reply_To=first["Message-ID"],
                    References=first["Message-ID"])
    with submission(environment, "patient.mssante.fr", PATIENT) as smtp:
        smtp.send_message(reply)
    environment.wait_message(DUPONT, reply_subject)


def test_reusing_the_message_id_of_anothers_conversation_does_not_close_it(environment) -> None:
    subject = unique("Suivi")
    first = message(DUPONT, PATIENT, subject)
    send(environment, DUPONT, first)
    environment.wait_message(PATIENT, subject)
    # Dr Martin sends "[FIN]" under the Message-ID that opened Dr Dupont's conversation
    intruder = message(MARTIN, PATIENT, unique("[FIN]"), X_MSS_MES="FIN")
    intruder.replace_header("Message-ID", first["Message-ID"])
    send(environment, MARTIN, intruder)
    environment.wait_message(PATIENT, intruder["Subject"])
    reply_subject = unique(f"Re: {subject}")
    reply = message(PATIENT, DUPONT, reply_subject, In_Reply_To=first["Message-ID"],
                    References=first["Message-ID"])
    with submission(environment, "patient.mssante.fr", PATIENT) as smtp:
        smtp.send_message(reply)  # Dr Dupont's conversation is still open
    environment.wait_message(DUPONT, reply_subject)
