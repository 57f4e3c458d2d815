from __future__ import annotations

import pytest

from mssante.domain.addresses import parse_address
from mssante.domain.mailboxes import (
    MailboxType,
    PersonKind,
    Role,
    Rules,
    check_authorised,
    check_owner,
    check_responsible,
    may_use,
)
from mssante.domain.patient import (
    Conversation,
    check_not_patient_to_patient,
    check_patient_recipient,
    check_patient_reply,
    closed_after,
    closes_conversation,
    message_ids,
    professional_message,
    thread_joined,
    thread_root,
)
from mssante.domain.policy import (
    MailboxClosed,
    NoSuchMailbox,
    check_deliverable,
    check_may_send_as,
    check_patient_address,
    check_recipient_in_trust_space,
    check_served,
    serves,
)
from mssante.errors import PolicyViolation

DEFAULT = Rules()
EVOLVED = Rules(social_may_hold_per=True)


def test_per_mailbox_holders() -> None:
    check_owner(MailboxType.PER, PersonKind.HEALTH, DEFAULT)
    for kind in (PersonKind.SOCIAL, PersonKind.STAFF, PersonKind.PATIENT):
        with pytest.raises(PolicyViolation, match="only health professionals"):
            check_owner(MailboxType.PER, kind, DEFAULT)
    check_owner(MailboxType.PER, PersonKind.SOCIAL, EVOLVED)
    with pytest.raises(PolicyViolation):
        check_owner(MailboxType.PER, PersonKind.STAFF, EVOLVED)


def test_org_responsible_and_authorised() -> None:
    check_responsible(MailboxType.ORG, PersonKind.HEALTH, DEFAULT)
    with pytest.raises(PolicyViolation):
        check_responsible(MailboxType.ORG, PersonKind.SOCIAL, DEFAULT)
    check_responsible(MailboxType.ORG, PersonKind.SOCIAL, EVOLVED)
    with pytest.raises(PolicyViolation):
        check_responsible(MailboxType.ORG, PersonKind.STAFF, EVOLVED)
    for kind in (PersonKind.HEALTH, PersonKind.SOCIAL, PersonKind.STAFF):
        check_authorised(MailboxType.ORG, kind)
    with pytest.raises(PolicyViolation):
        check_authorised(MailboxType.ORG, PersonKind.PATIENT)
    with pytest.raises(PolicyViolation):
        check_authorised(MailboxType.PER, PersonKind.STAFF)


def test_who_may_send_as() -> None:
    assert may_use(MailboxType.PER, Role.OWNER)
    assert may_use(MailboxType.ORG, Role.AUTHORISED)
    assert may_use(MailboxType.ORG, Role.RESPONSIBLE)
    assert not may_use(MailboxType.APP, Role.RESPONSIBLE)  # programs only
    usable = {"cardiologie@ch-xyz.mssante.fr"}
    check_may_send_as("marie", parse_address("Cardiologie@ch-xyz.mssante.fr"), usable)
    with pytest.raises(PolicyViolation, match="not allowed to send as dupont@"):
        check_may_send_as("marie", parse_address("dupont@ch-xyz.mssante.fr"), usable)


def test_trust_space_recipient() -> None:
    check_recipient_in_trust_space(parse_address("a@medecin.mssante.fr"), True)
    with pytest.raises(PolicyViolation, match="outside the MSSanté trust space"):
        check_recipient_in_trust_space(parse_address("a@gmail.com"), False)
    with pytest.raises(PolicyViolation, match=r"gmail\.com"):  # even if listed by mistake
        check_recipient_in_trust_space(parse_address("a@gmail.com"), True)


def test_threads() -> None:
    assert message_ids("<a@x> <b@y>") == ["<a@x>", "<b@y>"]
    assert thread_root("<c@x>", "<b@x>", "<a@x> <b@x>") == "<a@x>"
    assert thread_root("<c@x>", "<b@x>", None) == "<b@x>"
    assert thread_root("<c@x>", None, None) == "<c@x>"
    assert closes_conversation("[FIN]", None)
    assert closes_conversation(" [FIN] ", None)
    assert closes_conversation("Résultats", "FIN")
    assert not closes_conversation("Re: [FIN] et après", None)
    assert not closes_conversation("Résultats", None)


DOC = "dupont@ch-xyz.mssante.fr"
SEC = "cardiologie@ch-xyz.mssante.fr"


def test_patient_rules() -> None:
    open_conv = Conversation("<t1@x>", frozenset({DOC, SEC}), closed=False)
    closed_conv = Conversation("<t2@x>", frozenset({DOC}), closed=True)
    check_patient_recipient(DOC, False, [open_conv])
    check_patient_recipient(SEC, False, [open_conv])  # the Reply-To
    with pytest.raises(PolicyViolation, match="another patient"):
        check_patient_recipient("279035121518989@patient.mssante.fr", True, [open_conv])
    with pytest.raises(PolicyViolation, match="has not written to you"):
        check_patient_recipient("jean.martin@medecin.mssante.fr", False, [open_conv])
    with pytest.raises(PolicyViolation, match="closed"):
        check_patient_recipient(DOC, False, [closed_conv])
    check_patient_reply([DOC], ["<t1@x>"], [open_conv, closed_conv])
    with pytest.raises(PolicyViolation, match="not a reply"):
        check_patient_reply([DOC], [], [open_conv])
    with pytest.raises(PolicyViolation, match="closed this conversation"):
        check_patient_reply([DOC], ["<t2@x>"], [open_conv, closed_conv])


def test_who_counts_as_the_professional() -> None:
    message = professional_message(
        envelope_from="Dupont@ch-xyz.mssante.fr",
        from_addresses=["cardiologie@ch-xyz.mssante.fr", "spoof@medecin.mssante.fr"],
        message_id="<m2@x>", in_reply_to="<m1@x>", references=None, subject="[FIN]",
        mss_mes=None, reply_to=["Secretariat@ch-xyz.mssante.fr"])
    assert message is not None
    # the From addresses of the sender's own domain only
    assert message.senders == {"dupont@ch-xyz.mssante.fr", "cardiologie@ch-xyz.mssante.fr"}
    assert message.named_thread == "<m1@x>" and message.message_id == "<m2@x>"
    assert message.reply_to == ("secretariat@ch-xyz.mssante.fr",)
    assert message.closes
    # a DSN, a patient, a message without Message-ID open nothing
    for sender, message_id in (("", "<a@x>"), ("279035121518989@patient.mssante.fr", "<a@x>"),
                               ("dupont@ch-xyz.mssante.fr", None)):
        assert professional_message(
            envelope_from=sender, from_addresses=[], message_id=message_id, in_reply_to=None,
            references=None, subject="x", mss_mes=None, reply_to=[]) is None


def test_a_thread_is_joined_only_by_those_in_it() -> None:
    mine = Conversation("<t@x>", frozenset({"dupont@ch-xyz.mssante.fr"}), closed=False)
    message = professional_message(
        envelope_from="dupont@ch-xyz.mssante.fr", from_addresses=[], message_id="<n@x>",
        in_reply_to=None, references="<t@x> <u@x>", subject="x", mss_mes=None, reply_to=[])
    assert message is not None
    assert thread_joined(message, [mine]) == "<t@x>"
    assert thread_joined(message, []) == "<t@x>"  # a thread nobody holds yet
    other = Conversation("<t@x>", frozenset({"martin@medecin.mssante.fr"}), closed=False)
    assert thread_joined(message, [other]) == "<n@x>"  # another's: a thread of its own


def test_a_closed_thread_stays_closed() -> None:
    closing = professional_message(
        envelope_from="dupont@ch-xyz.mssante.fr", from_addresses=[], message_id="<f@x>",
        in_reply_to=None, references="<t@x>", subject="[FIN]", mss_mes=None, reply_to=[])
    later = professional_message(
        envelope_from="dupont@ch-xyz.mssante.fr", from_addresses=[], message_id="<l@x>",
        in_reply_to=None, references="<t@x>", subject="Re: suite", mss_mes=None, reply_to=[])
    assert closing is not None and later is not None
    open_thread = Conversation("<t@x>", frozenset({"dupont@ch-xyz.mssante.fr"}), closed=False)
    closed_thread = Conversation("<t@x>", open_thread.professionals, closed=True)
    assert closed_after(closing, open_thread) and closed_after(closing, None)
    assert closed_after(later, closed_thread)  # a later message does not reopen it
    assert not closed_after(later, open_thread) and not closed_after(later, None)


def test_patients_never_write_to_patients() -> None:
    check_not_patient_to_patient(True, False)
    check_not_patient_to_patient(False, True)  # a professional writes to a patient
    with pytest.raises(PolicyViolation, match="another patient"):
        check_not_patient_to_patient(True, True)


def test_the_operator_serves_its_own_domains_only() -> None:
    domains = frozenset({"ch-xyz.mssante.fr"})
    assert serves(domains, "CH-XYZ.mssante.fr.")
    check_served(domains, parse_address("dupont@ch-xyz.mssante.fr"))
    with pytest.raises(PolicyViolation, match="not a domain of this operator"):
        check_served(domains, parse_address("martin@medecin.mssante.fr"))


def test_a_local_recipient_is_an_open_mailbox_and_a_patient_a_valid_ins() -> None:
    patient = parse_address("279035121518989@patient.mssante.fr")
    check_patient_address(patient)
    check_patient_address(parse_address("dupont@ch-xyz.mssante.fr"))
    with pytest.raises(NoSuchMailbox, match="not a patient address"):
        check_patient_address(parse_address("279035121518980@patient.mssante.fr"))
    check_deliverable(patient, exists=True, active=True)
    with pytest.raises(NoSuchMailbox, match="No such mailbox"):
        check_deliverable(patient, exists=False, active=False)
    with pytest.raises(MailboxClosed, match="Mailbox closed"):
        check_deliverable(patient, exists=True, active=False)


def test_reusing_another_professionals_message_id_does_not_join_their_thread() -> None:
    """Dr Martin sends the patient a message whose own Message-ID is the one that
    opened Dr Dupont's conversation, subject [FIN]: it does not close Dr Dupont's."""
    dupont = Conversation("<t@x>", frozenset({"dupont@ch-xyz.mssante.fr"}), closed=False)
    reused = professional_message(
        envelope_from="martin@medecin.mssante.fr", from_addresses=[], message_id="<t@x>",
        in_reply_to=None, references=None, subject="[FIN]", mss_mes=None, reply_to=[])
    assert reused is not None
    thread = thread_joined(reused, [dupont])
    assert thread != "<t@x>" and thread.startswith("<t@x> ")
    # and again: Dr Martin's later message in that thread of his joins it
    assert thread_joined(reused, [dupont, Conversation(thread, frozenset(
        {"martin@medecin.mssante.fr"}), closed=True)]) == thread
