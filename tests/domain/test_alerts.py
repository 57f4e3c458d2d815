"""domain/alerts.py: the selection of an alert and who may mark a message as one."""

from __future__ import annotations

import pytest

from mssante.domain.alerts import (
    AlertError,
    check_alert_id,
    is_alert,
    message_id,
    new_alert_id,
    selects,
    target,
)

ROW = {"mailbox_type": "PER", "profession": "10", "specialty": "SM04", "department": "75",
       "structure": "1750000001"}


def test_criteria_combine_with_and_repeated_values_with_or() -> None:
    assert selects(target(professions=["10"], departments=["75", "69"]), **ROW)
    assert not selects(target(professions=["10"], departments=["69"]), **ROW)
    assert selects(target(specialties=["sm04"]), **ROW)  # codes compare in upper case
    assert selects(target(structures=["1750000001"], types=["PER"]), **ROW)
    assert not selects(target(types=["ORG"]), **ROW)
    assert not selects(target(professions=["10"]), **{**ROW, "mailbox_type": "APP"})
    assert not selects(target(departments=["75"]), **{**ROW, "mailbox_type": "CAB"})


@pytest.mark.parametrize(("criteria", "says"), [
    ({}, "no criterion"),
    ({"professions": ["99"]}, "unknown profession code '99'"),
    ({"departments": ["96"]}, "department '96'"),
    ({"types": ["APP"]}, "mailbox type 'APP'"),
    ({"specialties": ["cardio logie"]}, "specialty"),
    ({"structures": ["750000001"]}, "structure '750000001'"),
])
def test_a_wrong_criterion_is_named(criteria: dict[str, list[str]], says: str) -> None:
    with pytest.raises(AlertError, match=says):
        target(**criteria)


def test_departments_of_corsica_and_overseas() -> None:
    assert target(departments=["2a", "974"]).departments == ("2A", "974")


def test_only_an_authority_marks_a_message_as_an_alert() -> None:
    authority = "alertes@sante.mssante.fr"
    rule = {"alert_header": "x", "envelope_from": authority, "from_addresses": [authority],
            "authorities": [authority.upper()]}
    assert is_alert(**rule)
    assert not is_alert(**{**rule, "alert_header": None})
    assert not is_alert(**{**rule, "alert_header": "  "})
    assert not is_alert(**{**rule, "envelope_from": "dupont@ch-xyz.mssante.fr"})
    assert not is_alert(**{**rule, "from_addresses": ["dupont@ch-xyz.mssante.fr"]})
    assert not is_alert(**{**rule, "from_addresses": [authority, authority]})
    assert not is_alert(**{**rule, "authorities": []})


def test_an_alert_id_maps_to_its_message_id() -> None:
    alert_id = new_alert_id(0)
    assert alert_id.startswith("19700101T000000-")
    assert message_id(alert_id, "CH-XYZ.mssante.fr") == f"<alerte.{alert_id}@ch-xyz.mssante.fr>"
    with pytest.raises(AlertError):
        check_alert_id("<alerte.x@y>")
