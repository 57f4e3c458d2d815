"""What a message tells a professional mailbox of its conversations with patients
(domain.patient.care_notes)."""

from __future__ import annotations

from mssante.domain.patient import CareNote, care_notes


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
