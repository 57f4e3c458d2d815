"""People, mailboxes and roles: who may hold, be responsible for, use a mailbox."""

from __future__ import annotations

import pytest

from mssante.domain.mailboxes import MailboxType, PersonKind, Role, Rules
from mssante.errors import Conflict, InvalidAddress, NotFound, PolicyViolation
from mssante.store import MailboxRole, MessageSummary, OutboundRecipient, Store

DOMAIN = "ch-xyz.mssante.fr"
RULES = Rules()
SOCIAL_RULES = Rules(social_may_hold_per=True)
ORG = f"cardiologie@{DOMAIN}"
PER = f"alice.martin@{DOMAIN}"
APP_DN = "CN=dpi.ch-xyz.mssante.fr,OU=318310021300028,O=CH XYZ,C=FR"


# ----------------------------------------------------------------- people

async def test_person_round_trip_and_duplicate_login(store: Store) -> None:
    created = await store.create_person("dr", PersonKind.HEALTH, "Dr Alice Martin",
                                        rpps="10101010101", password_hash="$argon2id$x")
    assert await store.get_person("dr") == created
    assert created.kind is PersonKind.HEALTH and created.rpps == "10101010101"
    assert await store.get_person("nobody") is None
    with pytest.raises(Conflict, match="'dr' exists already"):
        await store.create_person("dr", PersonKind.STAFF, "Someone else")


async def test_list_persons_and_password(people: Store) -> None:
    assert [p.login for p in await people.list_persons()] == ["dr", "dr2", "pat", "sec", "soc"]
    await people.set_password_hash("sec", "$argon2id$new")
    person = await people.get_person("sec")
    assert person is not None and person.password_hash == "$argon2id$new"
    with pytest.raises(NotFound):
        await people.set_password_hash("nobody", "x")


async def test_delete_person_refused_for_owner_and_last_responsible(mailboxes: Store) -> None:
    with pytest.raises(Conflict, match=r"owns alice\.martin@"):
        await mailboxes.delete_person("dr")
    await mailboxes.delete_mailbox(PER)
    with pytest.raises(Conflict, match="last responsible of cardiologie@"):
        await mailboxes.delete_person("dr")
    await mailboxes.grant(ORG, "dr2", Role.RESPONSIBLE, rules=RULES)
    await mailboxes.grant(ORG, "sec", Role.AUTHORISED, rules=RULES)
    await mailboxes.delete_person("dr")
    await mailboxes.delete_person("sec")
    assert await mailboxes.get_person("dr") is None
    assert [(r.login, r.role) for r in await mailboxes.roles(ORG)] == [("dr2", Role.RESPONSIBLE)]
    with pytest.raises(NotFound):
        await mailboxes.delete_person("dr")


# -------------------------------------------------------------- mailboxes

async def test_a_card_finds_its_holder_only_when_one_person_has_the_rpps(people: Store) -> None:
    """idNatPs "8" + RPPS (a CPS card's serialNumber) -> the one person with that RPPS."""
    found = await people.person_by_id_nat_ps("810101010101")
    assert found is not None and found.login == "dr"
    for wrong in ("10101010101", "8", "", "899999999999"):
        assert await people.person_by_id_nat_ps(wrong) is None
    await people.create_person("dr-bis", PersonKind.HEALTH, "Dr Alice Martin (2)",
                               rpps="10101010101")
    assert await people.person_by_id_nat_ps("810101010101") is None  # never pick one


async def test_per_needs_a_health_professional(people: Store) -> None:
    for login in ("sec", "pat", "soc"):
        with pytest.raises(PolicyViolation, match="health professionals"):
            await people.create_mailbox(f"{login}@{DOMAIN}", MailboxType.PER, rules=RULES,
                                        owner=login)
    with pytest.raises(PolicyViolation, match="needs its owner"):
        await people.create_mailbox(f"x@{DOMAIN}", MailboxType.PER, rules=RULES)
    with pytest.raises(PolicyViolation):
        await people.create_mailbox(f"x@{DOMAIN}", MailboxType.PER, rules=RULES, owner="dr",
                                    responsible=["dr2"])
    assert await people.list_mailboxes() == []

    mailbox = await people.create_mailbox(f"Alice.Martin@{DOMAIN}", MailboxType.PER,
                                          rules=RULES, owner="dr")
    assert mailbox.address == PER and mailbox.display_address == f"Alice.Martin@{DOMAIN}"
    assert mailbox.type is MailboxType.PER and mailbox.active
    folders = await people.folders.all(PER)
    assert [(f.name, f.special_use) for f in folders] == [
        ("INBOX", None), ("Archive", "\\Archive"), ("Drafts", "\\Drafts"),
        ("Sent", "\\Sent"), ("Trash", "\\Trash")]
    assert all(f.uidnext == 1 and f.uidvalidity > 0 and f.highestmodseq == 1 for f in folders)
    assert await people.get_mailbox(f"ALICE.MARTIN@{DOMAIN.upper()}") == mailbox
    assert await people.roles(PER) == [
        MailboxRole("dr", PersonKind.HEALTH, Role.OWNER, "rw")]


async def test_social_professional_holds_per_only_with_the_setting(people: Store) -> None:
    with pytest.raises(PolicyViolation, match="social_may_hold_per"):
        await people.create_mailbox(f"chloe.roux@{DOMAIN}", MailboxType.PER, rules=RULES,
                                    owner="soc")
    mailbox = await people.create_mailbox(f"chloe.roux@{DOMAIN}", MailboxType.PER,
                                          rules=SOCIAL_RULES, owner="soc")
    assert await people.usable_mailboxes("soc") == frozenset({mailbox.address})


async def test_patient_mailbox_belongs_to_a_patient(people: Store) -> None:
    address = "279035121518989@patient.mssante.fr"
    with pytest.raises(PolicyViolation, match="belongs to a patient"):
        await people.create_mailbox(address, MailboxType.PAT, rules=RULES, owner="dr")
    await people.create_mailbox(address, MailboxType.PAT, rules=RULES, owner="pat")
    assert await people.usable_mailboxes("pat") == frozenset({address})


async def test_org_needs_a_responsible_health_professional(people: Store) -> None:
    with pytest.raises(PolicyViolation, match="at least one responsible"):
        await people.create_mailbox(ORG, MailboxType.ORG, rules=RULES)
    with pytest.raises(PolicyViolation, match="must be a health professional"):
        await people.create_mailbox(ORG, MailboxType.ORG, rules=RULES, responsible=["sec"])
    with pytest.raises(PolicyViolation, match="not an owner"):
        await people.create_mailbox(ORG, MailboxType.ORG, rules=RULES, owner="dr",
                                    responsible=["dr"])
    with pytest.raises(NotFound, match="'ghost'"):
        await people.create_mailbox(ORG, MailboxType.ORG, rules=RULES,
                                    responsible=["dr", "ghost"])
    assert await people.get_mailbox(ORG) is None
    mailbox = await people.create_mailbox(ORG, MailboxType.ORG, rules=RULES,
                                          responsible=["dr", "dr2", "dr"],
                                          organisation="CH XYZ", service="Cardiologie")
    assert (mailbox.organisation, mailbox.service) == ("CH XYZ", "Cardiologie")
    assert [(r.login, r.role) for r in await people.roles(ORG)] == [
        ("dr", Role.RESPONSIBLE), ("dr2", Role.RESPONSIBLE)]


async def test_existing_address_is_a_conflict_whatever_its_case(mailboxes: Store) -> None:
    with pytest.raises(Conflict, match="exists already"):
        await mailboxes.create_mailbox(ORG.upper(), MailboxType.ORG, rules=RULES,
                                       responsible=["dr2"])
    with pytest.raises(InvalidAddress):
        await mailboxes.create_mailbox("no-at-sign", MailboxType.ORG, rules=RULES,
                                       responsible=["dr2"])


async def test_secretary_authorised_on_org_uses_it(mailboxes: Store) -> None:
    assert await mailboxes.usable_mailboxes("sec") == frozenset()
    await mailboxes.grant(ORG, "sec", Role.AUTHORISED, rules=RULES)
    assert await mailboxes.usable_mailboxes("sec") == frozenset({ORG})
    assert await mailboxes.usable_mailboxes("dr") == frozenset({ORG, PER})
    with pytest.raises(PolicyViolation, match="ORG and CAB"):
        await mailboxes.grant(PER, "sec", Role.AUTHORISED, rules=RULES)
    with pytest.raises(PolicyViolation, match="patient cannot use"):
        await mailboxes.grant(ORG, "pat", Role.AUTHORISED, rules=RULES)
    with pytest.raises(PolicyViolation, match="must be a health professional"):
        await mailboxes.grant(ORG, "sec", Role.RESPONSIBLE, rules=RULES)
    with pytest.raises(NotFound):
        await mailboxes.grant(ORG, "ghost", Role.AUTHORISED, rules=RULES)
    with pytest.raises(NotFound):
        await mailboxes.grant(f"ghost@{DOMAIN}", "sec", Role.AUTHORISED, rules=RULES)


async def test_regrant_changes_rights_and_read_only_cannot_send(mailboxes: Store) -> None:
    await mailboxes.grant(ORG, "sec", Role.AUTHORISED, rules=RULES)
    await mailboxes.grant(ORG, "sec", Role.AUTHORISED, rights="r", rules=RULES)
    assert MailboxRole("sec", PersonKind.STAFF, Role.AUTHORISED, "r") in await mailboxes.roles(ORG)
    assert await mailboxes.usable_mailboxes("sec") == frozenset()
    with pytest.raises(ValueError, match="rights"):
        await mailboxes.grant(ORG, "sec", Role.AUTHORISED, rights="rwx", rules=RULES)


async def test_revoking_the_last_responsible_is_refused(mailboxes: Store) -> None:
    with pytest.raises(Conflict, match="last responsible"):
        await mailboxes.revoke(ORG, "dr")
    with pytest.raises(Conflict, match="last responsible"):  # demoting counts too
        await mailboxes.grant(ORG, "dr", Role.AUTHORISED, rules=RULES)
    await mailboxes.grant(ORG, "dr2", Role.RESPONSIBLE, rules=RULES)
    await mailboxes.grant(ORG, "dr", Role.AUTHORISED, rules=RULES)  # dr2 remains
    await mailboxes.revoke(ORG, "dr")
    assert [(r.login, r.role) for r in await mailboxes.roles(ORG)] == [("dr2", Role.RESPONSIBLE)]
    assert await mailboxes.usable_mailboxes("dr") == frozenset({PER})
    with pytest.raises(NotFound, match="no role"):
        await mailboxes.revoke(ORG, "dr")


async def test_owner_cannot_be_revoked_or_doubled(mailboxes: Store) -> None:
    with pytest.raises(Conflict, match="keeps its owner"):
        await mailboxes.revoke(PER, "dr")
    with pytest.raises(Conflict, match="has an owner"):
        await mailboxes.grant(PER, "dr2", Role.OWNER, rules=RULES)
    await mailboxes.grant(PER, "dr", Role.OWNER, rights="r", rules=RULES)  # same owner: rights
    assert (await mailboxes.roles(PER))[0].rights == "r"


async def test_app_mailbox_is_found_by_certificate_and_used_by_nobody(people: Store) -> None:
    app = f"compte_rendu_noreply@{DOMAIN}"
    with pytest.raises(PolicyViolation, match="certificate"):
        await people.create_mailbox(app, MailboxType.APP, rules=RULES, responsible=["dr"])
    with pytest.raises(PolicyViolation, match="only APP"):
        await people.create_mailbox(ORG, MailboxType.ORG, rules=RULES, responsible=["dr"],
                                    cert_dn=APP_DN)
    created = await people.create_mailbox(app, MailboxType.APP, rules=RULES,
                                          responsible=["dr"], cert_dn=APP_DN)
    assert created.cert_dn == APP_DN
    # Same DN written differently (spaces, case of the attribute types): same mailbox.
    found = await people.mailbox_for_certificate(
        "cn=dpi.ch-xyz.mssante.fr, ou=318310021300028, o=CH XYZ, c=FR")
    assert found == created
    assert await people.mailbox_for_certificate("CN=other,O=CH XYZ,C=FR") is None
    assert await people.usable_mailboxes("dr") == frozenset()  # APP: never by login
    await people.set_mailbox_active(app, False)
    assert await people.mailbox_for_certificate(APP_DN) is None


async def test_inactive_mailboxes_are_not_usable(mailboxes: Store) -> None:
    await mailboxes.set_mailbox_active(PER, False)
    assert await mailboxes.usable_mailboxes("dr") == frozenset({ORG})
    mailbox = await mailboxes.get_mailbox(PER)
    assert mailbox is not None and not mailbox.active
    with pytest.raises(NotFound):
        await mailboxes.set_mailbox_active(f"ghost@{DOMAIN}", True)


async def test_list_mailboxes_by_domain(mailboxes: Store) -> None:
    await mailboxes.create_mailbox("bruno.petit@medecin.mssante.fr", MailboxType.PER,
                                   rules=RULES, owner="dr2")
    assert [m.address for m in await mailboxes.list_mailboxes()] == [
        PER, "bruno.petit@medecin.mssante.fr", ORG]
    assert [m.address for m in await mailboxes.list_mailboxes(DOMAIN.upper())] == [PER, ORG]
    assert [m.domain for m in await mailboxes.list_mailboxes("medecin.mssante.fr")] == [
        "medecin.mssante.fr"]
    assert await mailboxes.list_mailboxes("nowhere.mssante.fr") == []


async def test_delete_mailbox_removes_roles_messages_and_unshared_bodies(
        mailboxes: Store, count_rows) -> None:
    summary = MessageSummary(None, None, None, None)
    shared = await mailboxes.accept_message(
        b"shared", envelope_from="", local=[PER, ORG], remote=[], summary=summary)
    queued = await mailboxes.accept_message(
        b"queued too", envelope_from="", local=[ORG],
        remote=[OutboundRecipient("x@medecin.mssante.fr")], summary=summary)
    only = await mailboxes.accept_message(
        b"org only", envelope_from="", local=[ORG], remote=[], summary=summary)
    await mailboxes.delete_mailbox(ORG.upper())
    assert await mailboxes.get_mailbox(ORG) is None
    assert await count_rows("mailbox_roles") == 1  # dr's PER
    assert await mailboxes.count_messages() == 1
    assert await mailboxes.get_body(shared.sha256) == b"shared"  # PER still holds it
    assert await mailboxes.get_body(queued.sha256) == b"queued too"  # the queue holds it
    with pytest.raises(NotFound):
        await mailboxes.get_body(only.sha256)
    with pytest.raises(NotFound):
        await mailboxes.delete_mailbox(ORG)
    with pytest.raises(NotFound):
        await mailboxes.roles(ORG)
