"""The check of one typed recipient before sending (``operator/recipientcheck.py``),
on the running environment's operators: what it accepts and refuses, the reason
it gives, and that submission refuses the same addresses for the same reason."""

from __future__ import annotations

import smtplib
import ssl

import pytest

from mssante.auth.identity import Identity
from mssante.content.ascii import to_ascii
from mssante.domain.mailboxes import MailboxType, PersonKind, Rules
from mssante.operator.recipientcheck import RecipientCheck, Refusal, check_recipient
from tests.conftest import RunningEnvironment

HOSPITAL = "ch-xyz.mssante.fr"
PATIENTS = "patient.mssante.fr"
DUPONT = "dupont@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
PATIENT = "279035121518989@patient.mssante.fr"


PROFESSIONAL = Identity(DUPONT, PersonKind.HEALTH.value)


def check(environment: RunningEnvironment, typed: str, *, at: str = HOSPITAL,
          identity: Identity = PROFESSIONAL, sender: str = DUPONT,
          accepted: int = 0) -> RecipientCheck:
    runtime = environment.service(at).runtime
    return environment.runner.call(check_recipient(runtime, identity, sender, typed,
                                                   accepted=accepted))


def test_an_address_outside_the_trust_space_is_refused_with_the_reason(
        environment: RunningEnvironment) -> None:
    verdict = check(environment, "someone@gmail.com")
    assert not verdict.accepted
    assert verdict.refusal is Refusal.OUTSIDE
    assert verdict.address == "someone@gmail.com"
    assert verdict.reason.startswith("someone@gmail.com est hors de l'espace de confiance")
    assert "gmail.com n'est pas sur la liste blanche" in verdict.reason
    assert "outside the MSSanté trust space" in verdict.detail
    # a domain under mssante.fr that no operator serves is outside too
    unlisted = check(environment, "x@inconnu.mssante.fr")
    assert (unlisted.refusal, unlisted.address) == (Refusal.OUTSIDE, "x@inconnu.mssante.fr")


@pytest.mark.parametrize("typed", [MARTIN, "Jean.Martin@MEDECIN.mssante.fr", f"<{MARTIN}>",
                                   f"Dr Jean Martin <{MARTIN}>", f"  {MARTIN} "])
def test_a_whitelisted_address_is_accepted(environment: RunningEnvironment,
                                           typed: str) -> None:
    verdict = check(environment, typed)
    assert verdict.accepted, verdict.reason
    assert (verdict.refusal, verdict.reason, verdict.detail) == (None, "", "")
    assert verdict.address is not None and verdict.address.lower() == MARTIN


def test_local_mailboxes_must_exist_and_be_open(environment: RunningEnvironment) -> None:
    assert check(environment, DUPONT).accepted
    assert check(environment, "cardiologie@ch-xyz.mssante.fr").accepted
    unknown = check(environment, "personne@ch-xyz.mssante.fr")
    assert unknown.refusal is Refusal.UNKNOWN
    assert unknown.reason == ("personne@ch-xyz.mssante.fr n'existe pas : aucune boîte aux "
                              "lettres de ce nom.")
    assert unknown.detail == "No such mailbox: personne@ch-xyz.mssante.fr"
    operator = environment.service(HOSPITAL)
    store = operator.store
    address = "fermee@ch-xyz.mssante.fr"
    rules = Rules(social_may_hold_per=operator.config.operator.social_may_hold_per)
    environment.runner.call(store.create_mailbox(
        address, MailboxType.ORG, rules=rules, responsible=[DUPONT], service="Fermée",
        structure="1750000001", liste_rouge=True))
    try:
        # (not checked while open: the runtime keeps an open mailbox 2 s, as for SMTP)
        environment.runner.call(store.set_mailbox_active(address, False))
        closed = check(environment, address)
        assert closed.refusal is Refusal.CLOSED
        assert closed.reason == f"La boîte aux lettres {address} est fermée."
    finally:
        environment.runner.call(store.delete_mailbox(address))


@pytest.mark.parametrize("typed", ["", "   ", "dupont", "dupont@", "@ch-xyz.mssante.fr",
                                   "a b@ch-xyz.mssante.fr", "dupont@ch-xyz", "x\x00@y.fr",
                                   "Dr <dupont@ch-xyz.mssante.fr", "a@b@c.fr", "x" * 300])
def test_what_is_no_address_is_said_so(environment: RunningEnvironment, typed: str) -> None:
    verdict = check(environment, typed)
    assert (verdict.refusal, verdict.address) == (Refusal.INVALID, None)
    assert verdict.reason.endswith("» n'est pas une adresse de messagerie valide.")
    assert "\x00" not in verdict.reason and len(verdict.reason) < 160
    assert verdict.detail  # the parser's own words


def test_patient_addresses(environment: RunningEnvironment) -> None:
    assert check(environment, PATIENT).accepted  # a professional may write to a patient
    wrong = check(environment, "279035121518988@patient.mssante.fr")  # a wrong INS key
    assert wrong.refusal is Refusal.UNKNOWN
    assert wrong.reason.startswith("279035121518988@patient.mssante.fr n'est pas une adresse "
                                   "de patient valide")
    # the patients' own operator: the same rule before looking the mailbox up
    assert check(environment, "123@patient.mssante.fr", at=PATIENTS).refusal is Refusal.UNKNOWN


def test_a_patient_only_replies(environment: RunningEnvironment) -> None:
    patient = Identity(PATIENT, PersonKind.PATIENT.value)
    never = "cardiologie.jamais@ch-xyz.mssante.fr"  # has written to no patient
    verdict = check(environment, never, at=PATIENTS, identity=patient, sender=PATIENT)
    assert verdict.refusal is Refusal.PATIENT
    assert verdict.reason.startswith(f"Vous ne pouvez pas écrire à {never} : un patient")
    assert "has not written to you" in verdict.detail
    other = check(environment, "279035121518989@patient.mssante.fr", at=PATIENTS,
                  identity=patient, sender=PATIENT)
    assert other.refusal is Refusal.PATIENT  # never to a patient


def test_too_many_recipients(environment: RunningEnvironment) -> None:
    verdict = check(environment, MARTIN, accepted=1000)
    assert verdict.refusal is Refusal.TOO_MANY
    assert verdict.reason.startswith(MARTIN)


def test_submission_refuses_the_same_addresses_for_the_same_reason(
        environment: RunningEnvironment) -> None:
    endpoint = environment.operator(HOSPITAL)["submission"]
    context = ssl.create_default_context(cafile=environment.ca_file)
    with smtplib.SMTP(endpoint["host"], endpoint["port"], timeout=10) as smtp:
        smtp.starttls(context=context)
        smtp.login(DUPONT, environment.password(DUPONT))
        smtp.mail(DUPONT)
        for typed in ("someone@gmail.com", "personne@ch-xyz.mssante.fr",
                      "279035121518988@patient.mssante.fr", MARTIN, DUPONT):
            verdict = check(environment, typed)
            code, text = smtp.rcpt(typed)
            if verdict.accepted:
                assert code == 250, (typed, text)
            else:
                assert code == 550, (typed, text)
                # the same words, folded to ASCII as every SMTP reply is
                assert to_ascii(verdict.detail) in text.decode().replace("\r\n", " "), typed
        smtp.rset()
