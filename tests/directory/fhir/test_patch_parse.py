"""FHIRPath Patch bodies parsed into telecom operations, without I/O, and the 400/422
answers to everything else."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fhir.resources.R4B.parameters import Parameters

from mssante.directory.fhir.outcome import FhirError
from mssante.directory.fhir.patch import MAILBOX_ORGANIZATION_URL, parse_patch
from mssante.directory.fhir.resources import EMAIL_TYPE_URL, METADATA_URL, telecom
from mssante.directory.model import (
    Mailbox,
    ResourceKind,
    TelecomDelete,
    TelecomInsert,
    TelecomReplace,
)
from mssante.domain.mailboxes import MailboxType

PRACTITIONER = ResourceKind.PRACTITIONER
ORGANIZATION = ResourceKind.ORGANIZATION
ADDRESS = "jean.martin@medecin.mssante.fr"


def contact(address: str = ADDRESS, mailbox_type: str = "PER", **metadata: Any) -> Any:
    """A ContactPoint as the API renders one (``resources.telecom``)."""
    mailbox = Mailbox(address=address, type=MailboxType(mailbox_type), **metadata)
    return telecom(mailbox)


def operation(op_type: str, path: str, **parts: Any) -> dict[str, Any]:
    rendered: list[dict[str, Any]] = [{"name": "type", "valueCode": op_type},
                                      {"name": "path", "valueString": path}]
    for name, value in parts.items():
        if name == "name":
            rendered.append({"name": "name", "valueString": value})
        elif name == "index":
            rendered.append({"name": "index", "valueInteger": value})
        else:
            rendered.append({"name": "value", "valueContactPoint": value})
    return {"name": "operation", "part": rendered}


def body(*operations: dict[str, Any]) -> dict[str, Any]:
    parameters = {"resourceType": "Parameters", "parameter": list(operations)}
    Parameters.model_validate(parameters)  # the bodies of these tests are valid FHIR
    return parameters


def fails(kind: ResourceKind, data: Any, status: int) -> str:
    with pytest.raises(FhirError) as caught:
        parse_patch(kind, data)
    assert caught.value.status == status, caught.value.diagnostics
    return caught.value.diagnostics


def test_the_four_operations() -> None:
    value = contact(description="Secrétariat", service="Cardiologie", responsible="Dr X",
                    digitization=True, liste_rouge=True)
    ops = parse_patch(PRACTITIONER, body(
        operation("add", "Practitioner", name="telecom", value=value),
        operation("insert", "Practitioner.telecom", index=0, value=contact("b@x.mssante.fr")),
        operation("replace", f"Practitioner.telecom.where(value='{ADDRESS}')", value=value),
        operation("delete", "Practitioner.telecom.where( value = 'OLD@x.mssante.fr' )"),
    ))
    expected = Mailbox(address=ADDRESS, type=MailboxType.PER, description="Secrétariat",
                       service="Cardiologie", responsible="Dr X", digitization=True,
                       liste_rouge=True)
    assert ops == [
        TelecomInsert(expected),
        TelecomInsert(Mailbox(address="b@x.mssante.fr", type=MailboxType.PER)),
        TelecomReplace(ADDRESS, expected),
        TelecomDelete("old@x.mssante.fr"),
    ]


def test_add_on_telecom_path_is_tolerated_and_organisations() -> None:
    ops = parse_patch(ORGANIZATION, body(operation(
        "add", "Organization.telecom", name="telecom",
        value=contact("bal@chu.mssante.fr", "APP"))))
    assert ops == [TelecomInsert(Mailbox(address="bal@chu.mssante.fr", type=MailboxType.APP))]


def test_organisation_of_a_personal_mailbox() -> None:
    by_reference = contact()
    by_reference["extension"].append({"url": MAILBOX_ORGANIZATION_URL,
                                      "valueReference": {"reference": "Organization/1690"}})
    by_identifier = contact()
    by_identifier["extension"].append({"url": MAILBOX_ORGANIZATION_URL, "valueIdentifier": {
        "system": "urn:oid:1.2.250.1.71.4.2.2", "value": "1691"}})
    ops = parse_patch(PRACTITIONER, body(
        operation("add", "Practitioner", name="telecom", value=by_reference),
        operation("replace", f"Practitioner.telecom.where(value='{ADDRESS}')",
                  value=by_identifier)))
    assert [op.mailbox.organisation for op in ops
            if isinstance(op, TelecomInsert | TelecomReplace)] == ["1690", "1691"]
    broken = contact()
    broken["extension"].append({"url": MAILBOX_ORGANIZATION_URL, "valueString": "1690"})
    assert MAILBOX_ORGANIZATION_URL in fails(PRACTITIONER, body(
        operation("add", "Practitioner", name="telecom", value=broken)), 422)


def test_the_type_may_come_from_tre_r257() -> None:
    value = contact()
    metadata = value["extension"][1]["extension"]
    metadata[0]["valueCodeableConcept"]["coding"][0]["system"] = (
        "https://mos.esante.gouv.fr/NOS/TRE_R257-TypeBAL/FHIR/TRE-R257-TypeBAL")
    assert parse_patch(PRACTITIONER, body(operation(
        "add", "Practitioner", name="telecom", value=value)))[0] == TelecomInsert(
        Mailbox(address=ADDRESS, type=MailboxType.PER))


@pytest.mark.parametrize("data", [
    None, [], "x", {"resourceType": "Bundle"}, {"resourceType": "Parameters"},
    {"resourceType": "Parameters", "parameter": []},
    {"resourceType": "Parameters", "parameter": [{"name": "op"}]},
    {"resourceType": "Parameters", "parameter": [{"name": "operation"}]},
    {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [{}]}]},
])
def test_malformed_bodies(data: Any) -> None:
    fails(PRACTITIONER, data, 400)


def test_malformed_operations() -> None:
    value = contact()
    for op, message in [
        (operation("add", "Practitioner", value=value), "'name' is missing"),
        (operation("insert", "Practitioner.telecom", value=value), "'index' is missing"),
        (operation("insert", "Practitioner.telecom", index=-1, value=value), "index >= 0"),
        (operation("replace", f"Practitioner.telecom.where(value='{ADDRESS}')"),
         "'value' is missing"),
        (operation("copy", "Practitioner"), "unknown operation type 'copy'"),
        ({"name": "operation", "part": [{"name": "type", "valueCode": "add"},
                                        {"name": "type", "valueCode": "add"}]}, "twice"),
        ({"name": "operation", "part": [{"name": "type", "valueString": "add"}]},
         "needs valueCode"),
        ({"name": "operation", "part": [{"name": "source", "valueInteger": 1}]},
         "unknown part 'source'"),
    ]:
        assert message in fails(PRACTITIONER, {"resourceType": "Parameters",
                                               "parameter": [op]}, 400)


def test_operations_this_server_does_not_do() -> None:
    value = contact()
    cases = [
        (operation("add", "Practitioner", name="name", value=value), "name 'telecom' only"),
        (operation("add", "Practitioner.name", name="telecom", value=value), "add applies"),
        (operation("insert", "Practitioner.name", index=0, value=value), "insert applies"),
        (operation("delete", "Practitioner.telecom[0]"), "the path must be"),
        (operation("delete", "Organization.telecom.where(value='a@b.mssante.fr')"),
         "the path must be"),
        (operation("replace", "Practitioner.telecom.where(value='a@b.mssante.fr')",
                   value=value), "address never changes"),
        ({"name": "operation", "part": [{"name": "type", "valueCode": "move"},
                                        {"name": "path", "valueString": "Practitioner"}]},
         "move is not supported"),
        (operation("add", "Practitioner", name="telecom",
                   value=contact("a@gmail.com")), "outside the trust space"),
        (operation("delete", "Practitioner.telecom.where(value='123@patient.mssante.fr')"),
         "patient"),
        (operation("add", "Practitioner", name="telecom", value=contact(mailbox_type="ORG")),
         "does not hold ORG"),
    ]
    for op, message in cases:
        assert message in fails(PRACTITIONER, {"resourceType": "Parameters",
                                               "parameter": [op]}, 422)
    assert "does not hold PER" in fails(ORGANIZATION, body(operation(
        "add", "Organization", name="telecom", value=contact())), 422)


def test_telecoms_that_are_not_mssante_mailboxes() -> None:
    def add(value: Any) -> str:
        return fails(PRACTITIONER, {"resourceType": "Parameters", "parameter": [
            operation("add", "Practitioner", name="telecom", value=value)]}, 422)

    phone = {"system": "phone", "value": "0102030405"}
    assert "system 'email'" in add(phone)
    plain = {"system": "email", "value": ADDRESS}
    assert "not an MSSanté mailbox" in add(plain)
    other = contact()
    other["extension"][0]["valueCoding"]["code"] = "AUTRE"
    assert EMAIL_TYPE_URL in add(other)
    untyped = contact()
    del untyped["extension"][1]
    assert "type" in add(untyped)
    wrong_type = contact()
    wrong_type["extension"][1]["extension"][0]["valueCodeableConcept"]["coding"][0][
        "code"] = "PAT"
    assert "not allowed in the directory" in add(wrong_type)
    wrong_system = contact()
    wrong_system["extension"][1]["extension"][0]["valueCodeableConcept"]["coding"][0][
        "system"] = "http://example.org"
    assert "JDV_J139" in add(wrong_system)
    twice = copy.deepcopy(contact())
    twice["extension"][1]["extension"].append({"url": "listeRouge", "valueBoolean": True})
    assert "given twice" in add(twice)
    bad_boolean = contact()
    bad_boolean["extension"][1]["extension"][-1] = {"url": "listeRouge", "valueString": "yes"}
    assert "listeRouge needs a valueBoolean" in add(bad_boolean)
    bad_string = contact()
    bad_string["extension"][1]["extension"].append({"url": "description", "valueBoolean": True})
    assert "description needs a valueString" in add(bad_string)
    assert METADATA_URL  # the metadata extension is the one the API renders
