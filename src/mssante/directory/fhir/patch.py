"""FHIRPath Patch of mailboxes: a ``Parameters`` body parsed into ``model.TelecomOp``s,
without I/O.

FHIR R4 fhirpatch.html: the body is a Parameters resource whose parameters are all
named ``operation``, each with the parts ``type``, ``path`` and, as the type needs,
``name``, ``value[x]``, ``index``. This server accepts what MSSanté publication uses
(MSSanté reference, "National directory"), on ``<Kind>`` = Practitioner or
Organization:

- ``add``: path ``<Kind>`` (or ``<Kind>.telecom``, tolerated), name ``telecom``,
  ``valueContactPoint``: publish a mailbox (``TelecomInsert``);
- ``insert``: path ``<Kind>.telecom``, an ``index`` >= 0, ``valueContactPoint``: the
  same; the index is not kept (the directory lists mailboxes by address);
- ``replace``: path ``<Kind>.telecom.where(value='<address>')``, ``valueContactPoint``
  (``TelecomReplace``);
- ``delete``: path ``<Kind>.telecom.where(value='<address>')`` (``TelecomDelete``).

The ContactPoint is an MSSanté mailbox (Annuaire Santé IG, as-mailbox-mss):
``system`` email, ``value`` the address, the fr-core-contact-point-email-type
extension coded MSSANTE, and the as-ext-mailbox-mss-metadata extension giving
``type`` (required), ``description``, ``service``, ``responsible``, ``digitization``,
``listeRouge``. A PER or CAB mailbox may name the organisation it belongs to with the
extension ``MAILBOX_ORGANIZATION_URL`` (this server's: the IG has none on
Practitioner), ``valueReference`` ``Organization/<idNatSt>`` or ``valueIdentifier``
with the idNatSt system.

Invariants: a body that is not such a Parameters resource raises ``FhirError`` 400
(so does one nesting deeper than ``MAX_DEPTH``); a well-formed operation this server
does not do (another type or path, a telecom that is not an MSSanté mailbox, a type
the resource does not hold, an address outside the trust space) raises 422. Every
string of the body, names included (address, description, service, responsible, the
organisation's identifier...), is checked before anything else: one holding a C0
control character (NUL included), DEL or a lone surrogate raises 422 ``value``
naming where it is, since no directory value holds one and a database would refuse
it. Each message names the operation (1-based) and the problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mssante.directory.extract import directory_address, directory_type
from mssante.directory.fhir.outcome import bad_request, unprocessable
from mssante.directory.fhir.params import forbidden_character
from mssante.directory.fhir.resources import (
    EMAIL_TYPE_SYSTEM,
    EMAIL_TYPE_URL,
    MAILBOX_TYPE_SYSTEMS,
    METADATA_URL,
    MSSANTE_CODE,
)
from mssante.directory.model import (
    ID_NAT_ST_SYSTEM,
    Mailbox,
    ResourceKind,
    TelecomDelete,
    TelecomInsert,
    TelecomOp,
    TelecomReplace,
)
from mssante.domain.mailboxes import MailboxType
from mssante.errors import InvalidAddress

MAILBOX_ORGANIZATION_URL = "urn:mssante:fhir:StructureDefinition:mailbox-organization"
MAX_OPERATIONS = 100
MAX_PATCH_BODY = 64 * 1024  # bytes of a body (the router reads no more)
MAX_DEPTH = 32  # a Parameters of FHIRPath Patch nests about ten levels

_PART_VALUES = {"type": "valueCode", "path": "valueString", "name": "valueString",
                "index": "valueInteger"}
_STRING_FIELDS = ("description", "service", "responsible")
_BOOLEAN_FIELDS = {"digitization": "digitization", "listeRouge": "liste_rouge"}
# FHIRPath string literal escapes (FHIRPath N1 §Literals: String).
_FHIRPATH_ESCAPE = re.compile(r"\\(['\"`\\/fnrt])")
_FHIRPATH_ESCAPES = {"f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def parse_patch(kind: ResourceKind, body: Any) -> list[TelecomOp]:
    """The telecom operations of a FHIRPath Patch body on a resource of ``kind``."""
    check_strings(body)
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise bad_request("the body must be a FHIR Parameters resource holding FHIRPath "
                          "Patch operations (FHIR R4 fhirpatch.html)")
    parameters = body.get("parameter")
    if not isinstance(parameters, list) or not parameters:
        raise bad_request("the Parameters resource has no operation")
    if len(parameters) > MAX_OPERATIONS:
        raise bad_request(f"at most {MAX_OPERATIONS} operations in one patch")
    return [_operation(kind, number, parameter)
            for number, parameter in enumerate(parameters, start=1)]


def check_strings(body: Any) -> None:
    """400 when ``body`` (decoded JSON) nests deeper than ``MAX_DEPTH``; 422 naming
    the first string (value or name) holding a forbidden character (module
    docstring). Iterative: any depth of nesting costs no stack."""
    pending: list[tuple[Any, str, int]] = [(body, "", 0)]
    while pending:
        value, path, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise bad_request(f"the body nests deeper than {MAX_DEPTH} levels",
                              code="structure")
        if isinstance(value, str):
            _check_string(path.rstrip(":") or "the body", value)
        elif isinstance(value, dict):
            items = list(value.items())
            for key, item in reversed(items):
                _check_string(f"{path.rstrip(':') or 'the body'}: a name", key)
                pending.append((item, _step(path, key), depth + 1))
        elif isinstance(value, list):
            for index in range(len(value) - 1, -1, -1):
                pending.append((value[index], _item(path, index, value[index]), depth + 1))


def _check_string(where: str, value: str) -> None:
    character = forbidden_character(value)
    if character is not None:
        raise unprocessable(f"{where} holds the character {character} (control "
                            "characters and lone surrogates are refused)", code="value")


def _step(path: str, key: str) -> str:
    if not path:
        return key
    return f"{path} {key}" if path.endswith(":") else f"{path}.{key}"


def _item(path: str, index: int, item: Any) -> str:
    """The path of a list's item: ``operation N`` for the Parameters' parameters, else
    named by its ``url`` (last segment) or ``name`` when it has one, as FHIR does."""
    if path == "parameter":
        return f"operation {index + 1}:"
    if isinstance(item, dict):
        for label in ("url", "name"):
            if isinstance(item.get(label), str) and forbidden_character(item[label]) is None:
                return f"{path}({item[label].rstrip('/').rpartition('/')[2][:80]})"
    return f"{path}[{index}]"


def _operation(kind: ResourceKind, number: int, parameter: Any) -> TelecomOp:
    where = f"operation {number}"
    if not isinstance(parameter, dict) or parameter.get("name") != "operation":
        raise bad_request(f"{where}: every parameter must be named 'operation'")
    parts = _parts(where, parameter.get("part"))
    op_type = _part(where, parts, "type")
    path = _part(where, parts, "path")
    resource = kind.value
    if op_type in ("add", "insert"):
        if op_type == "add":
            if path not in (resource, f"{resource}.telecom"):
                raise unprocessable(f"{where}: add applies to path {resource!r} "
                                    f"with name 'telecom', not {path!r}")
            if _part(where, parts, "name") != "telecom":
                raise unprocessable(f"{where}: add supports the name 'telecom' only")
        else:
            if path != f"{resource}.telecom":
                raise unprocessable(f"{where}: insert applies to path "
                                    f"'{resource}.telecom', not {path!r}")
            index = _part(where, parts, "index")
            if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                raise bad_request(f"{where}: insert needs a valueInteger index >= 0")
        return TelecomInsert(_mailbox(kind, where, _value(where, parts)))
    if op_type in ("replace", "delete"):
        address = _where_address(resource, where, path)
        if op_type == "delete":
            _no_value(where, parts)
            return TelecomDelete(address)
        mailbox = _mailbox(kind, where, _value(where, parts))
        if mailbox.address != address:
            raise unprocessable(f"{where}: a mailbox's address never changes "
                                f"({address}, not {mailbox.address})", code="business-rule")
        return TelecomReplace(address, mailbox)
    if op_type == "move":
        raise unprocessable(f"{where}: move is not supported (the directory lists "
                            "mailboxes by address)", code="not-supported")
    raise bad_request(f"{where}: unknown operation type {op_type!r} "
                      "(add, insert, replace, delete)")


def _parts(where: str, parts: Any) -> dict[str, Any]:
    if not isinstance(parts, list) or not parts:
        raise bad_request(f"{where} has no part")
    found: dict[str, Any] = {}
    for part in parts:
        if not isinstance(part, dict) or not isinstance(part.get("name"), str):
            raise bad_request(f"{where}: every part needs a name")
        name = part["name"]
        if name in found:
            raise bad_request(f"{where}: the part {name!r} is given twice")
        if name == "value":
            values = [key for key in part if key.startswith("value")]
            if len(values) != 1:
                raise bad_request(f"{where}: the value part needs one value[x]")
            found[name] = (values[0], part[values[0]])
        elif name in _PART_VALUES:
            expected = _PART_VALUES[name]
            if expected not in part:
                raise bad_request(f"{where}: the part {name!r} needs {expected}")
            found[name] = part[expected]
        else:
            raise bad_request(f"{where}: unknown part {name!r}")
    return found


def _part(where: str, parts: Mapping[str, Any], name: str) -> Any:
    if name not in parts:
        raise bad_request(f"{where}: the part {name!r} is missing")
    return parts[name]


def _value(where: str, parts: Mapping[str, Any]) -> Any:
    kind, value = _part(where, parts, "value")
    if kind != "valueContactPoint":
        raise unprocessable(f"{where}: the value must be a valueContactPoint, not {kind}")
    return value


def _no_value(where: str, parts: Mapping[str, Any]) -> None:
    extra = sorted(set(parts) - {"type", "path"})
    if extra:
        raise bad_request(f"{where}: delete takes no {', '.join(extra)}")


def _where_address(resource: str, where: str, path: Any) -> str:
    pattern = re.compile(re.escape(resource)
                         + r"\.telecom\.where\(\s*value\s*=\s*'((?:[^'\\]|\\.)*)'\s*\)")
    found = pattern.fullmatch(path) if isinstance(path, str) else None
    if found is None:
        raise unprocessable(f"{where}: the path must be {resource}.telecom.where(value="
                            f"'<address>'), not {path!r}")
    literal = _FHIRPATH_ESCAPE.sub(
        lambda m: _FHIRPATH_ESCAPES.get(m.group(1), m.group(1)), found.group(1))
    return _address(where, literal)


def _address(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"{where}: the mailbox has no address")
    _check_string(f"{where}: the mailbox's address", value)  # a FHIRPath literal may escape one
    try:
        return directory_address(value.strip())
    except InvalidAddress as exc:
        raise unprocessable(f"{where}: {exc}", code="value") from None


def _mailbox(kind: ResourceKind, where: str, contact: Any) -> Mailbox:
    if not isinstance(contact, dict):
        raise bad_request(f"{where}: valueContactPoint must be an object")
    if contact.get("system") != "email":
        raise unprocessable(f"{where}: an MSSanté mailbox is a telecom of system 'email'")
    address = _address(where, contact.get("value"))
    extensions = _extensions(where, contact.get("extension"))
    email_type = extensions.get(EMAIL_TYPE_URL, {}).get("valueCoding")
    if (not isinstance(email_type, dict) or email_type.get("code") != MSSANTE_CODE
            or email_type.get("system", EMAIL_TYPE_SYSTEM) != EMAIL_TYPE_SYSTEM):
        raise unprocessable(f"{where}: {address} is not an MSSanté mailbox (the extension "
                            f"{EMAIL_TYPE_URL} coded {MSSANTE_CODE} is missing)")
    metadata = _extensions(where, extensions.get(METADATA_URL, {}).get("extension"))
    mailbox_type = _mailbox_type(where, metadata.get("type"))
    if not kind.holds(mailbox_type):
        raise unprocessable(f"{where}: a {kind.value} does not hold {mailbox_type} "
                            "mailboxes", code="business-rule")
    values: dict[str, Any] = {}
    for name in _STRING_FIELDS:
        if name in metadata:
            values[name] = _typed(where, metadata[name], "valueString", str, name).strip()
    for name, field in _BOOLEAN_FIELDS.items():
        if name in metadata:
            values[field] = _typed(where, metadata[name], "valueBoolean", bool, name)
    organisation = ""
    if MAILBOX_ORGANIZATION_URL in extensions:
        organisation = _organisation(where, extensions[MAILBOX_ORGANIZATION_URL])
    return Mailbox(address=address, type=mailbox_type, organisation=organisation, **values)


def _extensions(where: str, extensions: Any) -> dict[str, dict[str, Any]]:
    """Extensions by url (each at most once)."""
    if extensions is None:
        return {}
    if not isinstance(extensions, list):
        raise bad_request(f"{where}: extension must be a list")
    found: dict[str, dict[str, Any]] = {}
    for extension in extensions:
        if not isinstance(extension, dict) or not isinstance(extension.get("url"), str):
            raise bad_request(f"{where}: every extension needs a url")
        if extension["url"] in found:
            raise unprocessable(f"{where}: the extension {extension['url']!r} is given twice")
        found[extension["url"]] = extension
    return found


def _typed(where: str, extension: Mapping[str, Any], key: str, expected: type,
           name: str) -> Any:
    value = extension.get(key)
    if not isinstance(value, expected):
        raise unprocessable(f"{where}: the mailbox's {name} needs a {key}")
    return value


def _mailbox_type(where: str, extension: Mapping[str, Any] | None) -> MailboxType:
    if extension is None:
        raise unprocessable(f"{where}: the mailbox's type (as-ext-mailbox-mss-metadata, "
                            "type) is missing")
    concept = extension.get("valueCodeableConcept")
    codings = concept.get("coding") if isinstance(concept, dict) else None
    for coding in codings if isinstance(codings, list) else []:
        if (isinstance(coding, dict) and isinstance(coding.get("code"), str)
                and coding.get("system") in MAILBOX_TYPE_SYSTEMS):
            try:
                return directory_type(coding["code"])
            except ValueError as exc:
                raise unprocessable(f"{where}: {exc}", code="code-invalid") from None
    raise unprocessable(f"{where}: the mailbox's type needs a valueCodeableConcept coded "
                        "in JDV_J139-TypeBAL-RASS (PER, ORG, APP, CAB)")


def _organisation(where: str, extension: Mapping[str, Any]) -> str:
    reference = extension.get("valueReference")
    identifier = extension.get("valueIdentifier")
    if isinstance(reference, dict) and isinstance(reference.get("reference"), str):
        target, _, organisation = str(reference["reference"]).rpartition("/")
        if target.rpartition("/")[2] == "Organization" and organisation:
            return organisation
    elif (isinstance(identifier, dict) and identifier.get("system") == ID_NAT_ST_SYSTEM
          and isinstance(identifier.get("value"), str) and identifier["value"]):
        return str(identifier["value"])
    raise unprocessable(f"{where}: {MAILBOX_ORGANIZATION_URL} needs a valueReference "
                        "Organization/<idNatSt> or a valueIdentifier with the idNatSt system")
