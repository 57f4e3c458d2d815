"""Rendering without I/O: what the views become, validated with fhir.resources."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mssante.directory.fhir.outcome import FhirError, operation_outcome
from mssante.directory.fhir.resources import (
    OrganisationView,
    PractitionerView,
    RoleView,
    View,
    render,
    searchset,
    telecoms,
)
from mssante.directory.model import Mailbox, Organisation, Practitioner
from mssante.domain.mailboxes import MailboxType
from tests.directory.fhir.conftest import validate

BARE = Practitioner(id_nat_ps="810000000017", id_type="8", pp_id="10000000017")


def test_a_bare_practitioner_has_no_empty_values() -> None:
    data = render(PractitionerView(BARE, ()))
    validate(data)
    assert set(data) == {"resourceType", "id", "identifier"}
    unknown_type = render(PractitionerView(Practitioner("1", "X", "1"), ()))
    assert len(unknown_type["identifier"]) == 1  # an unknown id type: idNatPs only


def test_a_bare_organisation_has_no_empty_values() -> None:
    data = render(OrganisationView(Organisation(id_nat_st="1690000001", id_type="1"), ()))
    validate(data)
    assert set(data) == {"resourceType", "id", "identifier"}
    blank = Organisation(id_nat_st="3x", id_type="3", legal_name="  ", street_name=" ",
                         routing_line="69003 ", postal_code="69003")
    data = render(OrganisationView(blank, ()))
    validate(data)
    assert "name" not in data and data["address"] == [{"use": "work", "postalCode": "69003"}]


def test_liste_rouge_is_dropped_whatever_the_caller_passes() -> None:
    shown = Mailbox(address="b@x.mssante.fr", type=MailboxType.PER)
    hidden = Mailbox(address="a@x.mssante.fr", type=MailboxType.PER, liste_rouge=True)
    assert [t["value"] for t in telecoms([hidden, shown])] == ["b@x.mssante.fr"]
    role = render(RoleView(BARE, "1690000001", "", (hidden,)))
    validate(role)
    assert "telecom" not in role and role["organization"] == {
        "reference": "Organization/1690000001"}


def test_telecoms_are_sorted_and_trimmed() -> None:
    boxes = [Mailbox(address=f"{c}@x.mssante.fr", type=MailboxType.CAB, description=" d ",
                     service="   ", responsible="r") for c in "cab"]
    rendered = telecoms(boxes)
    assert [t["value"] for t in rendered] == ["a@x.mssante.fr", "b@x.mssante.fr",
                                             "c@x.mssante.fr"]
    metadata = {e["url"]: e for e in rendered[0]["extension"][1]["extension"]}
    assert metadata["description"]["valueString"] == "d"
    assert "service" not in metadata and metadata["responsible"]["valueString"] == "r"


text = st.text(st.characters(codec="utf-8"), max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.tuples(*(text for _ in range(9))), st.booleans())
def test_any_values_render_valid_resources(values: tuple[str, ...], digitization: bool) -> None:
    family, given_name, civility, code, label, skill, legal, trade, street = values
    practitioner = Practitioner("810000000017", "8", "10000000017", civility=civility,
                                family_name=family, given_name=given_name,
                                profession_code=code, profession_label=label,
                                skill_code=skill, skill_label=label)
    mailbox = Mailbox(address="x@y.mssante.fr", type=MailboxType.PER, description=family,
                      service=trade, responsible=street, digitization=digitization)
    organisation = Organisation("1690000001", "1", legal_name=legal, trade_name=trade,
                                street_name=street, locality=family, routing_line=label)
    views: list[View] = [PractitionerView(practitioner, (mailbox,)),
             OrganisationView(organisation, (mailbox,)),
             RoleView(practitioner, "1690000001", legal, (mailbox,))]
    for view in views:
        validate(render(view))
    validate(searchset("http://x/fhir", views[:1], views[1:], total=None,
                       self_url="http://x/fhir/Practitioner?_count=1", next_url=None))


def test_operation_outcomes() -> None:
    validate(operation_outcome("invalid", "bad"))
    error = FhirError(500, "internal error")
    assert error.outcome()["issue"][0]["severity"] == "fatal"
    assert FhirError(412, "x").code == "multiple-matches"
    assert FhirError(418, "x").code == "processing"
    validate(error.outcome())
