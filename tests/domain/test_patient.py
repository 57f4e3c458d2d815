"""What a message tells a professional mailbox of its conversations with patients
(domain.patient.care_notes)."""

from __future__ import annotations

from mssante.domain.patient import CareNote, ReadReceipt, care_notes, read_receipt_action


def test_care_notes_of_a_professional_message_and_of_a_patient_reply() -> None:
    dr, patient = "dr@ch-xyz.mssante.fr", "279035121518989@patient.mssante.fr"
    sent = care_notes(envelope_from=dr, sent_from="Dr@ch-xyz.mssante.fr",
                      recipients=[patient.upper().replace("PATIENT", "patient"),
                                  "sec@ch-xyz.mssante.fr"],
                      local=["sec@ch-xyz.mssante.fr"], message_id="<fin@x>",
                      in_reply_to="<p1@pat>", references="<a1@x> <p1@pat>",
                      subject="[FIN]", mss_mes=None)
    assert sent == (CareNote(dr, patient, "<a1@x>", "<fin@x>", "[FIN]", from_patient=False,
                             closes=True),)
    reply = care_notes(envelope_from=patient, sent_from=None, recipients=[dr],
                       local=[dr, "279035121518989@patient.mssante.fr"],
                       message_id="<p2@pat>", in_reply_to="<a1@x>", references=None,
                       subject="Re", mss_mes="FIN")
    assert reply == (CareNote(dr, patient, "<a1@x>", "<p2@pat>", "Re", from_patient=True,
                              closes=False),)
    # relayed from another operator (no Sent copy here), or without a Message-ID: none
    assert care_notes(envelope_from=dr, sent_from=None, recipients=[patient], local=[],
                      message_id="<a@x>", in_reply_to=None, references=None, subject="x",
                      mss_mes=None) == ()
    assert care_notes(envelope_from=dr, sent_from=dr, recipients=[patient], local=[],
                      message_id=None, in_reply_to=None, references=None, subject="x",
                      mss_mes=None) == ()


def test_a_patient_cannot_refuse_a_read_receipt_a_professional_is_asked() -> None:
    dr = "dr@ch-xyz.mssante.fr"

    def action(**changes: object) -> ReadReceipt:
        given: dict[str, object] = {
            "patient": True, "notify_to": [dr.upper()], "authors": [dr],
            "already_sent": False, "is_report": False, "own": False, "may_write": True}
        given.update(changes)
        return read_receipt_action(**given)  # type: ignore[arg-type]

    assert action() is ReadReceipt.AUTOMATIC
    assert action(patient=False) is ReadReceipt.OFFER  # never sent for a professional
    # RFC 8098 §2.1: a request naming someone else than the author is asked, not answered
    assert action(notify_to=[dr, "other@ch-xyz.mssante.fr"]) is ReadReceipt.OFFER
    for nothing in ({"notify_to": []}, {"already_sent": True}, {"is_report": True},
                    {"own": True}, {"may_write": False}):
        assert action(**nothing) is ReadReceipt.NONE, nothing
        assert action(patient=False, **nothing) is ReadReceipt.NONE, nothing


def test_a_patients_read_receipt_is_no_reply_in_the_conversation() -> None:
    dr, patient = "dr@ch-xyz.mssante.fr", "279035121518989@patient.mssante.fr"
    given = {"envelope_from": patient, "sent_from": None, "recipients": [dr],
             "local": [dr], "message_id": "<mdn@pat>", "in_reply_to": "<a1@x>",
             "references": "<a1@x>", "subject": "Accusé de lecture : Bilan",
             "mss_mes": None}
    assert len(care_notes(**given)) == 1  # type: ignore[arg-type]
    assert care_notes(**given, report=True) == ()  # type: ignore[arg-type]
