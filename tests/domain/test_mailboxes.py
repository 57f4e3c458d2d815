"""A login's home and what it sees beside it (domain.mailboxes): several practice
contexts, one home that nothing added later moves."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.domain.mailboxes import (
    CertificateAlreadyBound,
    Holding,
    MailboxType,
    Role,
    Use,
    beside_home,
    check_certificate_binding,
    home_mailbox,
    may_send_from,
    personal_mailbox,
    use_of,
)
from mssante.errors import PolicyViolation

DUPONT = "dupont@ch-xyz.mssante.fr"


def held(address: str, mailbox_id: int, *, type: MailboxType = MailboxType.PER,
         role: Role = Role.OWNER, rights: str = "rw", active: bool = True,
         home: bool = False) -> Holding:
    return Holding(address, type, role, rights, active, mailbox_id, home)


def test_the_recorded_home_wins_over_an_address_sorting_first() -> None:
    """The seed of issue 9 §5: dupont.consult@ sorts before dupont@ ("." < "@"), and
    used to become the INBOX of dupont@'s login."""
    holdings = [held("dupont.consult@ch-xyz.mssante.fr", 7),
                held(DUPONT, 3, home=True)]
    home = home_mailbox(DUPONT, holdings)
    assert home is not None and home.address == DUPONT
    assert personal_mailbox(DUPONT, holdings) == DUPONT


def test_without_a_record_the_login_address_then_the_first_given() -> None:
    consult = held("a.consult@ch-xyz.mssante.fr", 9)
    own = held(DUPONT, 12)
    assert home_mailbox(DUPONT, [consult, own]) == own  # named like the login
    first, second = held("zz@ch-xyz.mssante.fr", 4), held("aa@ch-xyz.mssante.fr", 5)
    assert home_mailbox("dr", [second, first]) == first  # by id, never by address
    assert home_mailbox("DuPont@CH-XYZ.mssante.fr", [consult, own]) == own


def test_only_an_owned_per_or_pat_is_a_home() -> None:
    org = held("cardiologie@ch-xyz.mssante.fr", 1, type=MailboxType.ORG,
               role=Role.RESPONSIBLE)
    cab = held("cabinet@ch-xyz.mssante.fr", 2, type=MailboxType.CAB, role=Role.AUTHORISED)
    assert home_mailbox("marie.bernard", [org, cab]) is None
    assert personal_mailbox("marie.bernard", [org, cab]) is None
    patient = held("279035121518989@patient.mssante.fr", 3, type=MailboxType.PAT)
    assert home_mailbox("279035121518989@patient.mssante.fr", [patient]) == patient


def test_a_closed_home_leaves_the_personal_namespace_empty_and_stays_the_home() -> None:
    home = held(DUPONT, 1, active=False, home=True)
    other = held("dupont.consult@ch-xyz.mssante.fr", 2)
    assert home_mailbox(DUPONT, [home, other]) == home
    assert personal_mailbox(DUPONT, [home, other]) is None  # never handed to `other`
    assert [h.address for h, _ in beside_home(DUPONT, [home, other])] == [other.address]


def test_beside_the_home_other_per_mailboxes_with_full_use_and_shared_ones_as_granted(
        ) -> None:
    holdings = [
        held(DUPONT, 1, home=True),
        held("dupont.consult@ch-xyz.mssante.fr", 5),
        held("cardiologie@ch-xyz.mssante.fr", 2, type=MailboxType.ORG, role=Role.RESPONSIBLE),
        held("cabinet@ch-xyz.mssante.fr", 3, type=MailboxType.CAB, role=Role.AUTHORISED,
             rights="r"),
        held("urgences@ch-xyz.mssante.fr", 4, type=MailboxType.ORG, role=Role.AUTHORISED),
        held("dpi@ch-xyz.mssante.fr", 6, type=MailboxType.APP, role=Role.RESPONSIBLE),
        held("ferme@ch-xyz.mssante.fr", 8, type=MailboxType.ORG, role=Role.RESPONSIBLE,
             active=False),
    ]
    assert [(h.address, use) for h, use in beside_home(DUPONT, holdings)] == [
        ("cabinet@ch-xyz.mssante.fr", Use.READ),
        ("cardiologie@ch-xyz.mssante.fr", Use.FULL),
        ("dupont.consult@ch-xyz.mssante.fr", Use.FULL),
        ("urgences@ch-xyz.mssante.fr", Use.WRITE),
    ]
    assert use_of(holdings[0]) is Use.FULL


def test_sending_as_every_open_owned_per_and_writable_shared_mailbox() -> None:
    assert may_send_from(held(DUPONT, 1, home=True))
    assert may_send_from(held("dupont.consult@ch-xyz.mssante.fr", 2))  # not the home
    assert not may_send_from(held("dupont.old@ch-xyz.mssante.fr", 3, active=False))
    assert may_send_from(held("cardiologie@x.mssante.fr", 4, type=MailboxType.ORG,
                              role=Role.AUTHORISED))
    assert not may_send_from(held("cardiologie@x.mssante.fr", 4, type=MailboxType.ORG,
                                  role=Role.AUTHORISED, rights="r"))
    assert not may_send_from(held("dpi@x.mssante.fr", 5, type=MailboxType.APP,
                                  role=Role.RESPONSIBLE))


_LOCALS = st.text(alphabet="abcd.-", min_size=1, max_size=6).filter(
    lambda s: s[0] not in ".-")
_HOLDING = st.builds(
    held, _LOCALS.map(lambda s: f"{s}@ch-xyz.mssante.fr"), st.integers(1, 10_000),
    type=st.sampled_from(list(MailboxType)), role=st.sampled_from(list(Role)),
    rights=st.sampled_from(["rw", "r"]), active=st.booleans())


@given(st.lists(_HOLDING, min_size=1, max_size=8, unique_by=lambda h: h.address),
       st.lists(_HOLDING, max_size=4))
def test_nothing_added_later_moves_a_recorded_home(before: list[Holding],
                                                   added: list[Holding]) -> None:
    """Record the home of ``before`` as the store does, then give the person more
    mailboxes, created later (greater ids), named anything, the login's name too: the
    home does not move, and what is seen beside it only grows."""
    login = before[0].address
    home = home_mailbox(login, before)
    recorded = [dataclasses.replace(h, home=h == home) for h in before]
    top = max(h.mailbox_id for h in before)
    taken = {h.address for h in before}
    later = [dataclasses.replace(h, mailbox_id=top + i + 1)
             for i, h in enumerate(added) if h.address not in taken]
    later = list({h.address: h for h in later}.values())
    after = recorded + later
    if home is None:  # no home yet: the first PER or PAT given becomes it
        return
    assert home_mailbox(login, after) == dataclasses.replace(home, home=True)
    seen_before = {h.address for h, _ in beside_home(login, recorded)}
    seen_after = {h.address for h, _ in beside_home(login, after)}
    assert seen_before <= seen_after
    assert home.address not in seen_after


def test_one_certificate_dn_identifies_one_app_mailbox() -> None:
    dn = "CN=DPI CH XYZ,OU=750000001,O=CH XYZ,C=FR"
    check_certificate_binding("dpi@ch-xyz.mssante.fr", dn, None)  # free
    check_certificate_binding("dpi@ch-xyz.mssante.fr", dn, "DPI@ch-xyz.mssante.fr")  # its own
    with pytest.raises(CertificateAlreadyBound) as refused:
        check_certificate_binding("alertes@ch-xyz.mssante.fr", dn, "dpi@ch-xyz.mssante.fr")
    assert isinstance(refused.value, PolicyViolation)
    assert str(refused.value).startswith(
        f"the certificate {dn} already identifies the APP mailbox dpi@ch-xyz.mssante.fr")
