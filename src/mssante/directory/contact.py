"""A mailbox as the directory publishes it: a FHIR ContactPoint, and the FHIRPath Patch
(a ``Parameters`` resource) that adds it to or removes it from its resource.

Invariants:
- PER and CAB mailboxes are telecoms of a Practitioner (idNatPs), ORG and APP of an
  Organization (idNatSt); PAT mailboxes are never published (``resource_for`` is None).
- The ContactPoint carries the lower-case address, the fr-core e-mail type
  ``MSSANTE`` and the ANS mailbox metadata; empty strings are left out, booleans
  (digitization, listeRouge) are always present.
- A publication is always a whole ContactPoint: ``add`` for "create or change"
  (the trust space treats an add of a present address as a replace) and ``delete``
  for "remove" (a delete of an absent address succeeds). Sending one again is
  harmless, so a retry after a lost answer is safe.
- Addresses inside FHIRPath are string literals, escaped (FHIRPath N1 §Literals,
  String), so that a quote in a local part cannot change the path.
"""

from __future__ import annotations

from typing import Any, Final

from mssante.directory.model import (
    ID_NAT_PS_SYSTEM,
    ID_NAT_ST_SYSTEM,
    ORGANISATION_TYPES,
    PRACTITIONER_TYPES,
)
from mssante.domain.mailboxes import MailboxType

JSON = dict[str, Any]

PRACTITIONER: Final = "Practitioner"
ORGANIZATION: Final = "Organization"
RESOURCES: Final = frozenset({PRACTITIONER, ORGANIZATION})
ADD: Final = "add"
DELETE: Final = "delete"
OPERATIONS: Final = frozenset({ADD, DELETE})

# fr-core: the kind of e-mail address (TRE_R256-TypeMessagerie), MSSANTE here.
EMAIL_TYPE_URL: Final = ("https://interop.esante.gouv.fr/ig/fhir/core/StructureDefinition/"
                         "fr-core-contact-point-email-type")
EMAIL_TYPE_SYSTEM: Final = ("https://mos.esante.gouv.fr/NOS/TRE_R256-TypeMessagerie/FHIR/"
                            "TRE-R256-TypeMessagerie")
# Annuaire Santé IG: AsMailboxMSSMetadataExtension; the type is JDV_J139-TypeBAL-RASS.
METADATA_URL: Final = ("https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
                       "as-ext-mailbox-mss-metadata")
MAILBOX_TYPE_SYSTEM: Final = ("https://mos.esante.gouv.fr/NOS/JDV_J139-TypeBAL-RASS/FHIR/"
                              "JDV-J139-TypeBAL-RASS")

_FHIRPATH_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                     "\f": "\\f"}


def resource_for(mailbox_type: MailboxType) -> str | None:
    """The FHIR resource type holding mailboxes of this type; None: never published."""
    if mailbox_type in PRACTITIONER_TYPES:
        return PRACTITIONER
    if mailbox_type in ORGANISATION_TYPES:
        return ORGANIZATION
    return None


def identifier_system(resource: str) -> str:
    """The identifier system of the national id that names ``resource`` (idNatPs, idNatSt)."""
    if resource == PRACTITIONER:
        return ID_NAT_PS_SYSTEM
    if resource == ORGANIZATION:
        return ID_NAT_ST_SYSTEM
    raise ValueError(f"no mailbox is published on a {resource!r} resource")


def contact_point(address: str, mailbox_type: MailboxType, *, description: str = "",
                  service: str = "", responsible: str = "", digitization: bool = False,
                  liste_rouge: bool = False) -> JSON:
    """The ContactPoint of a published mailbox (FHIR R4 §2.24.0.1 ContactPoint)."""
    if resource_for(mailbox_type) is None:
        raise ValueError(f"a {mailbox_type} mailbox is not published in the directory")
    metadata: list[JSON] = [{"url": "type", "valueCodeableConcept": {"coding": [
        {"system": MAILBOX_TYPE_SYSTEM, "code": MailboxType(mailbox_type).value}]}}]
    for name, text in (("description", description), ("service", service),
                       ("responsible", responsible)):
        if text:
            metadata.append({"url": name, "valueString": text})
    metadata.append({"url": "digitization", "valueBoolean": digitization})
    metadata.append({"url": "listeRouge", "valueBoolean": liste_rouge})
    return {
        "system": "email",
        "value": address.lower(),
        "extension": [
            {"url": EMAIL_TYPE_URL,
             "valueCoding": {"system": EMAIL_TYPE_SYSTEM, "code": "MSSANTE"}},
            {"url": METADATA_URL, "extension": metadata},
        ],
    }


def fhirpath_string(value: str) -> str:
    """``value`` as a FHIRPath string literal, quotes included."""
    return "'" + "".join(_FHIRPATH_ESCAPES.get(c, c) for c in value) + "'"


def patch_parameters(resource: str, operation: str, address: str,
                     contact: JSON | None = None) -> JSON:
    """The FHIRPath Patch of one publication (FHIR R4 §3.1.0.11 FHIRPath Patch).

    ``add`` appends ``contact`` to ``<resource>.telecom``; ``delete`` removes
    ``<resource>.telecom.where(value='<address>')``.
    """
    identifier_system(resource)  # checks the resource type
    if operation == ADD:
        if contact is None:
            raise ValueError("an add needs the contact point")
        parts: list[JSON] = [
            {"name": "type", "valueCode": ADD},
            {"name": "path", "valueString": f"{resource}.telecom"},
            {"name": "name", "valueString": "telecom"},
            {"name": "value", "valueContactPoint": contact},
        ]
    elif operation == DELETE:
        parts = [
            {"name": "type", "valueCode": DELETE},
            {"name": "path", "valueString":
                f"{resource}.telecom.where(value={fhirpath_string(address.lower())})"},
        ]
    else:
        raise ValueError(f"unknown directory operation {operation!r}")
    return {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": parts}]}
