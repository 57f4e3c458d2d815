"""The CapabilityStatement (FHIR R4 capabilitystatement.html) of the directory's API.

Built from the tables of ``params`` (parameters, includes, limits) and the limits
of ``patch`` so that what the statement declares and what the API accepts cannot
drift apart: the limits are in ``rest.documentation``, each parameter's in its
``documentation``, the patch's in the patch interaction's. R4 has no
``conditionalPatch`` element: the conditional patch is stated in the patch
interaction's documentation.
"""

from __future__ import annotations

from typing import Any

from mssante import __version__
from mssante.directory.fhir.params import (
    COUNT,
    CURSOR,
    FORMAT,
    INCLUDE,
    INCLUDES,
    MAX_ALTERNATIVES,
    MAX_CONTAINS,
    MAX_COUNT,
    MAX_CRITERIA,
    MAX_ID_ALTERNATIVES,
    MAX_QUERY_BYTES,
    MAX_TOTAL_ALTERNATIVES,
    MAX_VALUE_LENGTH,
    MIN_CONTAINS,
    ORGANIZATION,
    PARAMETERS,
    PRACTITIONER,
    RESOURCE_TYPES,
    Parameter,
    ParamType,
    max_alternatives,
)
from mssante.directory.fhir.patch import MAX_OPERATIONS, MAX_PATCH_BODY
from mssante.directory.fhir.queries import TOTAL_LIMIT

DATE = "2026-11-26"  # when this statement last changed
PATCHABLE = (PRACTITIONER, ORGANIZATION)

_REST_DOCUMENTATION = (
    "Annuaire Santé for MSSanté: read and search for everyone; publication of "
    "mailboxes (telecom) by FHIRPath Patch for the trust space's operators (client "
    "certificate). Search: unknown parameters and modifiers are rejected with 400; "
    f"besides the parameters listed, only {COUNT}, {INCLUDE}, {CURSOR} and {FORMAT} "
    "(json) are accepted. Strings match case- and accent-insensitively, starting with "
    "the value; :exact compares the whole value as written, :contains any part. "
    f"{COUNT}: default and maximum {MAX_COUNT}, larger values are capped; {INCLUDE} on "
    "PractitionerRole. Pages are ordered by an internal key and linked by 'next' (the "
    f"{CURSOR} parameter, opaque). Bundle.total is given when the search matches at "
    f"most {TOTAL_LIMIT} resources and omitted beyond; a search restricted by "
    "mailbox-mss-type alone is counted only when it fits in one page (or with "
    f"{COUNT}=0). Mailboxes on the liste rouge are never returned and never match. "
    "Limits of a search (400 OperationOutcome 'too-costly' beyond, naming the limit): "
    f"at most {MAX_CRITERIA} criteria; at most {MAX_ALTERNATIVES} comma-separated "
    f"alternatives in a parameter ({MAX_ID_ALTERNATIVES} for _id, identifier, "
    f"practitioner and organization) and {MAX_TOTAL_ALTERNATIVES} in all; at most "
    f"{MAX_CONTAINS} :contains alternatives, each of at least {MIN_CONTAINS} "
    "characters (names and cities: as normalised, letters, digits and spaces). A value "
    f"is at most {MAX_VALUE_LENGTH} characters (400 'invalid' beyond); the query "
    f"string and a POST form hold at most {MAX_QUERY_BYTES} bytes together (414, 413 "
    "beyond). No value may hold a control character (U+0000-U+001F, U+007F) or a lone "
    "surrogate (400 'invalid')."
)

_PATCH_DOCUMENTATION = (
    "FHIRPath Patch (application/fhir+json Parameters) of telecom only: add or insert "
    "a mailbox, replace or delete telecom.where(value='<address>'). Conditional on the "
    "business identifier: PATCH [base]/{resource}?identifier=<system>|<value> (404 when "
    "none matches, 412 when several do), or PATCH [base]/{resource}/<id>. The operator "
    "may publish addresses of its own domains only (403 otherwise). The certificate "
    "is checked first (401, 403), before the body and the identifier. The body: at most "
    f"{MAX_PATCH_BODY} bytes (413 beyond), {MAX_OPERATIONS} operations; a string holding a "
    "control character or a lone surrogate is refused (422)."
)


def capability_statement(base: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": DATE,
        "publisher": "mssante",
        "kind": "instance",
        "software": {"name": "mssante", "version": __version__},
        "implementation": {"description": "MSSanté national directory (Annuaire Santé)",
                           "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "patchFormat": ["application/fhir+json"],
        "rest": [{
            "mode": "server",
            "documentation": _REST_DOCUMENTATION,
            "security": {"cors": False, "description": (
                "Read and search are public. PATCH needs a trust-space operator "
                "certificate (mutual TLS): 401 without one, 403 for another domain.")},
            "resource": [_resource(resource) for resource in RESOURCE_TYPES],
        }],
    }


def _resource(resource: str) -> dict[str, Any]:
    interactions: list[dict[str, Any]] = [{"code": "read"}, {"code": "search-type"}]
    if resource in PATCHABLE:
        interactions.append({"code": "patch",
                             "documentation": _PATCH_DOCUMENTATION.format(resource=resource)})
    entry: dict[str, Any] = {
        "type": resource,
        "interaction": interactions,
        "versioning": "no-version",
        "readHistory": False,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalRead": "not-supported",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
    }
    if resource in INCLUDES:
        entry["searchInclude"] = [f"{resource}:{name}" for name in INCLUDES[resource]]
    entry["searchParam"] = [
        {key: value for key, value in (("name", p.name), ("definition", p.definition),
                                       ("type", p.type.value),
                                       ("documentation", _documentation(p))) if value}
        for p in PARAMETERS[resource].values()]
    return entry


def _documentation(parameter: Parameter) -> str:
    """The parameter's documentation with its limits."""
    limits = f" At most {max_alternatives(parameter.name)} comma-separated alternatives"
    if parameter.type is ParamType.STRING:
        limits += f"; :contains needs at least {MIN_CONTAINS} characters"
    return f"{parameter.documentation}{limits}."
