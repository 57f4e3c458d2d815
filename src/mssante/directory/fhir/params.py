"""Search parameters: a FHIR query string parsed into typed criteria, without I/O.

What a request may carry (FHIR R4 search.html), and what it becomes:

- The parameters of ``PARAMETERS[resource]``, each of a type: ``string``
  (``StringCriterion``), ``token`` (``TokenCriterion``) or ``reference``
  (``ReferenceCriterion``). A value lists alternatives separated by ``,`` (OR);
  repeating a parameter adds a condition (AND) (FHIR R4 search.html#combining).
  ``\\,`` ``\\|`` ``\\$`` ``\\\\`` escape those characters (FHIR R4 search.html#escaping).
- Modifiers: ``:exact`` and ``:contains`` on strings (FHIR R4 search.html#string),
  none on tokens and references.
- Result parameters: ``_count`` (page size, capped at ``MAX_COUNT``; FHIR R4
  search.html#count lets a server return fewer), ``_include`` (PractitionerRole:
  ``practitioner``, ``organization``), ``_cursor`` (the paging position written in
  the ``next`` links, opaque to clients) and ``_format`` (JSON only).

Invariants:

- Any other parameter, modifier or malformed value raises ``FhirError`` 400 naming
  it: FHIR R4 search.html#errors lets a server ignore or reject unknown parameters;
  rejecting tells a client that its criterion was not applied.
- A parameter whose value is empty (``family=``) is ignored, as if absent; so are
  the empty alternatives of a list (``family=a,``).
- ``link_items`` keeps the criteria as the client wrote them (minus ``_count``,
  ``_cursor``, ``_format``), in order, to write the Bundle's links.

Limits (anyone may search: what one request may ask of the database is bounded;
FHIR R4 search.html#errors lets a server refuse a search too costly to run):

- at most ``MAX_CRITERIA`` criteria (non-empty search parameters) in a search;
- at most ``MAX_ALTERNATIVES`` comma-separated alternatives in one parameter
  (``MAX_ID_ALTERNATIVES`` for ``_id``, ``identifier`` and the references), and
  ``MAX_TOTAL_ALTERNATIVES`` in the whole search;
- at most ``MAX_CONTAINS`` ``:contains`` alternatives in a search (each is a
  substring test that reads a whole column), each of at least ``MIN_CONTAINS``
  characters once normalised as the search compares it;
- each alternative (and each parameter name) at most ``MAX_VALUE_LENGTH`` characters.

Beyond a count, ``FhirError`` 400 ``too-costly`` naming the limit; a value too long,
400 ``invalid``. (The router caps the query string and the form body at
``MAX_QUERY_BYTES``.) No name or value may hold a C0 control character (NUL
included), DEL or a lone surrogate: 400 ``invalid`` naming the parameter (a database
cannot store or compare them, and no directory value holds one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from mssante.directory.fhir.outcome import FhirError, bad_request
from mssante.directory.text import joined, normalise

PRACTITIONER = "Practitioner"
ORGANIZATION = "Organization"
PRACTITIONER_ROLE = "PractitionerRole"
RESOURCE_TYPES = (PRACTITIONER, ORGANIZATION, PRACTITIONER_ROLE)

DEFAULT_COUNT = 50  # MSSanté reference, "National directory": 50 a page
MAX_COUNT = 50
COUNT = "_count"
CURSOR = "_cursor"
INCLUDE = "_include"
FORMAT = "_format"
JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json",
                          "application/json+fhir"})

# Limits of a search (module docstring, "Limits").
MAX_QUERY_BYTES = 16 * 1024  # the query string and a POST search's form, together
MAX_CRITERIA = 20
MAX_ALTERNATIVES = 20
MAX_ID_ALTERNATIVES = 50  # _id, identifier, practitioner, organization
MAX_TOTAL_ALTERNATIVES = 100
MAX_CONTAINS = 10
MIN_CONTAINS = 3
MAX_VALUE_LENGTH = 200
_ID_PARAMETERS = frozenset({"_id", "identifier", "practitioner", "organization"})
# C0 controls, DEL and the surrogates (lone ones: a str holds no pairs).
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")

_HL7 = "http://hl7.org/fhir/SearchParameter/"
_ANNUAIRE = "https://interop.esante.gouv.fr/ig/fhir/annuaire/SearchParameter/"


class ParamType(StrEnum):
    """FHIR R4 search.html#ptypes: the types this server implements."""

    STRING = "string"
    TOKEN = "token"
    REFERENCE = "reference"


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: ParamType
    documentation: str
    definition: str = ""  # canonical URL of the SearchParameter, when one is published
    target: str = ""  # reference parameters: the resource type referred to


_ID = Parameter("_id", ParamType.TOKEN, "The logical id (idNatPs, idNatSt, or "
                "<idNatPs>-<idNatSt> for a PractitionerRole).", _HL7 + "Resource-id")
_MAILBOX = Parameter(
    "mailbox-mss", ParamType.STRING,
    "An MSSanté mailbox address among the resource's telecoms: starts with (default), "
    ":exact (the whole address, case-insensitive since addresses are), :contains.",
    _ANNUAIRE + "as-sp-mailbox-mss")
_MAILBOX_TYPE = Parameter(
    "mailbox-mss-type", ParamType.TOKEN,
    "The type of one of the resource's MSSanté mailboxes: PER, CAB (Practitioner, "
    "PractitionerRole), ORG, APP (Organization).", _ANNUAIRE + "as-sp-mailbox-mss-type")
_CITY = "The city of the organisation's address (normalised starts-with, :exact, :contains)."
_POSTAL = "The postal code of the organisation's address (starts-with, :exact, :contains)."

PARAMETERS: dict[str, dict[str, Parameter]] = {
    PRACTITIONER: {p.name: p for p in (
        _ID,
        Parameter("identifier", ParamType.TOKEN,
                  "idNatPs (urn:oid:1.2.250.1.71.4.2.1), RPPS (https://rpps.esante.gouv.fr) "
                  "or ADELI (https://adeli.esante.gouv.fr); a value without system "
                  "matches any of them.", _HL7 + "Practitioner-identifier"),
        Parameter("name", ParamType.STRING, "The family or the given name.",
                  _HL7 + "Practitioner-name"),
        Parameter("family", ParamType.STRING, "The family name (nom d'exercice).",
                  _HL7 + "individual-family"),
        Parameter("given", ParamType.STRING, "The given name (prénom d'exercice).",
                  _HL7 + "individual-given"),
        _MAILBOX,
        _MAILBOX_TYPE,
    )},
    ORGANIZATION: {p.name: p for p in (
        _ID,
        Parameter("identifier", ParamType.TOKEN,
                  "idNatSt (urn:oid:1.2.250.1.71.4.2.2), FINESS "
                  "(https://finess.esante.gouv.fr) or SIRET (https://sirene.fr); a value "
                  "without system matches any of them.", _HL7 + "Organization-identifier"),
        Parameter("name", ParamType.STRING,
                  "The legal name (raison sociale) or the trade name (enseigne).",
                  _HL7 + "Organization-name"),
        Parameter("address-city", ParamType.STRING, _CITY, _HL7 + "Organization-address-city"),
        Parameter("address-postalcode", ParamType.STRING, _POSTAL,
                  _HL7 + "Organization-address-postalcode"),
        _MAILBOX,
        _MAILBOX_TYPE,
    )},
    PRACTITIONER_ROLE: {p.name: p for p in (
        _ID,
        Parameter("practitioner", ParamType.REFERENCE, "The professional (Practitioner/<id>).",
                  _HL7 + "PractitionerRole-practitioner", PRACTITIONER),
        Parameter("organization", ParamType.REFERENCE, "The organisation (Organization/<id>).",
                  _HL7 + "PractitionerRole-organization", ORGANIZATION),
        Parameter("address-city", ParamType.STRING, _CITY + " Of the role's organisation."),
        Parameter("address-postalcode", ParamType.STRING,
                  _POSTAL + " Of the role's organisation."),
        _MAILBOX,
        _MAILBOX_TYPE,
    )},
}

STRING_MODIFIERS = frozenset({"", "exact", "contains"})

# _include targets (FHIR R4 search.html#include): <source>:<parameter>[:<target type>]
INCLUDES: dict[str, dict[str, str]] = {
    PRACTITIONER_ROLE: {"practitioner": PRACTITIONER, "organization": ORGANIZATION},
}

_ESCAPED = re.compile(r"\\([\\,$|])")
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # FHIR R4 datatypes.html#id


@dataclass(frozen=True, slots=True)
class Token:
    """``[system]|[code]``: ``system`` None when no ``|`` was written, "" for ``|code``."""

    system: str | None
    code: str


@dataclass(frozen=True, slots=True)
class StringCriterion:
    name: str
    modifier: str  # "", "exact" or "contains"
    values: tuple[str, ...]  # alternatives


@dataclass(frozen=True, slots=True)
class TokenCriterion:
    name: str
    values: tuple[Token, ...]


@dataclass(frozen=True, slots=True)
class ReferenceCriterion:
    name: str
    ids: tuple[str, ...]  # the logical ids referred to


Criterion = StringCriterion | TokenCriterion | ReferenceCriterion


@dataclass(frozen=True, slots=True)
class Search:
    resource: str
    criteria: tuple[Criterion, ...]
    count: int
    cursor: int | None  # the internal key after which this page starts
    includes: frozenset[str]  # PractitionerRole: "practitioner", "organization"
    link_items: tuple[tuple[str, str], ...]


def split_escaped(value: str, separator: str, maxsplit: int = -1) -> list[str]:
    """``value`` split on ``separator`` where it is not escaped by ``\\``; the parts
    keep their escapes (``unescape`` them once split)."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            current.append(value[i:i + 2])
            i += 2
            continue
        if char == separator and maxsplit != len(parts):
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def unescape(value: str) -> str:
    return _ESCAPED.sub(r"\1", value)


def check_format(value: str) -> None:
    """FHIR R4 http.html#mime-type: ``_format``; this server speaks JSON only."""
    if value.strip().lower().split(";")[0].strip() not in JSON_FORMATS:
        raise FhirError(406, f"_format {value!r} is not supported: this server answers "
                        "application/fhir+json only", code="not-supported")


def parse_search(resource: str, items: Iterable[tuple[str, str]]) -> Search:
    """The search of ``resource`` that ``items`` (query string pairs) ask for."""
    known = PARAMETERS[resource]
    criteria: list[Criterion] = []
    includes: set[str] = set()
    link_items: list[tuple[str, str]] = []
    count: int | None = None
    cursor: int | None = None
    unknown: list[str] = []
    for key, value in checked(items):
        name, _, modifier = key.partition(":")
        if name == FORMAT and not modifier:
            check_format(value)
            continue
        if name == COUNT and not modifier:
            if count is not None:
                raise bad_request("_count is given more than once")
            count = _non_negative(COUNT, value)
            continue
        if name == CURSOR and not modifier:
            if cursor is not None:
                raise bad_request("_cursor is given more than once")
            cursor = _non_negative(CURSOR, value)
            continue
        if name == INCLUDE:
            if modifier:
                raise bad_request(f"the modifier :{modifier} of _include is not supported",
                                  code="not-supported")
            includes.add(_include(resource, value))
            link_items.append((key, value))
            continue
        parameter = known.get(name)
        if parameter is None:
            unknown.append(key)
            continue
        criterion = _criterion(resource, parameter, modifier, value)
        if criterion is not None:
            criteria.append(criterion)
            _check_cost(criteria)
            link_items.append((key, value))
    if unknown:
        supported = ", ".join(sorted((*known, COUNT, FORMAT, *(
            [INCLUDE] if resource in INCLUDES else []))))
        raise bad_request(f"unknown search parameter(s) for {resource}: "
                          f"{', '.join(unknown)} (supported: {supported})",
                          code="not-supported")
    return Search(resource, tuple(criteria),
                  DEFAULT_COUNT if count is None else min(count, MAX_COUNT),
                  cursor, frozenset(includes), tuple(link_items))


def parse_conditional(resource: str, items: Iterable[tuple[str, str]]) -> TokenCriterion:
    """The criterion of a conditional patch: exactly one ``identifier`` parameter.

    FHIR R4 http.html#patch: a conditional patch selects with search parameters;
    this server selects by business identifier only, as the MSSanté publication does.
    """
    found: list[Criterion] = []
    for key, value in checked(items):
        if key == FORMAT:
            check_format(value)
            continue
        if key != "identifier":
            raise bad_request(f"a conditional patch of {resource} selects by identifier "
                              f"only, not {key!r}", code="not-supported")
        criterion = _criterion(resource, PARAMETERS[resource]["identifier"], "", value)
        if criterion is not None:
            found.append(criterion)
    if len(found) != 1 or not isinstance(found[0], TokenCriterion):
        raise bad_request(f"a conditional patch needs one identifier, as "
                          f"PATCH {resource}?identifier=<system>|<value>")
    return found[0]


def check_read(items: Iterable[tuple[str, str]]) -> None:
    """A read takes no parameter but ``_format``."""
    for key, value in checked(items):
        if key != FORMAT:
            raise bad_request(f"unknown parameter {key!r} for a read", code="not-supported")
        check_format(value)


def valid_id(value: str) -> bool:
    return _FHIR_ID.fullmatch(value) is not None


def forbidden_character(value: str) -> str | None:
    """The first character of ``value`` that no directory value holds (a C0 control,
    NUL included, DEL, a lone surrogate), as ``U+XXXX``; None when there is none."""
    found = _FORBIDDEN.search(value)
    return None if found is None else f"U+{ord(found.group()):04X}"


def checked(items: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """``items``, each checked: no forbidden character in its name or value, and a
    name of at most ``MAX_VALUE_LENGTH`` characters (400 otherwise)."""
    for key, value in items:
        if len(key) > MAX_VALUE_LENGTH:
            raise bad_request(f"a parameter name is at most {MAX_VALUE_LENGTH} characters, "
                              f"not {len(key)} ({key[:40]!r}...)")
        for text in (key, value):
            character = forbidden_character(text)
            if character is not None:
                raise bad_request(f"the parameter {key!r} holds the character {character} "
                                  "(control characters and lone surrogates are refused)")
        yield key, value


def _check_cost(criteria: Sequence[Criterion]) -> None:
    """The limits of a whole search (module docstring, "Limits")."""
    if len(criteria) > MAX_CRITERIA:
        raise bad_request(f"a search takes at most {MAX_CRITERIA} criteria (non-empty "
                          "search parameters)", code="too-costly")
    alternatives = sum(len(c.ids if isinstance(c, ReferenceCriterion) else c.values)
                       for c in criteria)
    if alternatives > MAX_TOTAL_ALTERNATIVES:
        raise bad_request(f"a search takes at most {MAX_TOTAL_ALTERNATIVES} alternatives "
                          f"in all, not {alternatives}", code="too-costly")
    contains = sum(len(c.values) for c in criteria
                   if isinstance(c, StringCriterion) and c.modifier == "contains")
    if contains > MAX_CONTAINS:
        raise bad_request(f"a search takes at most {MAX_CONTAINS} :contains alternatives "
                          f"in all, not {contains}", code="too-costly")


def max_alternatives(name: str) -> int:
    """How many comma-separated alternatives the parameter ``name`` takes."""
    return MAX_ID_ALTERNATIVES if name in _ID_PARAMETERS else MAX_ALTERNATIVES


def _searched(name: str, value: str) -> str:
    """``value`` as the search compares it (``queries``: addresses normalised,
    postal codes stripped, other strings reduced to their normalised words)."""
    if name == "mailbox-mss":
        return normalise(value).strip()
    if name == "address-postalcode":
        return value.strip()
    return joined(value)


def _non_negative(name: str, value: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise bad_request(f"{name} must be a non-negative integer, not {value!r}")
    return int(value)


def _include(resource: str, value: str) -> str:
    targets = INCLUDES.get(resource)
    if targets is None:
        raise bad_request(f"_include is not supported on {resource}", code="not-supported")
    source, _, rest = value.partition(":")
    parameter, _, target = rest.partition(":")
    if source != resource or parameter not in targets or target not in ("", targets[parameter]):
        raise bad_request(f"_include={value} is not supported; use one of "
                          + ", ".join(f"{resource}:{p}" for p in targets),
                          code="not-supported")
    return parameter


def _criterion(resource: str, parameter: Parameter, modifier: str,
               value: str) -> Criterion | None:
    if parameter.type is ParamType.STRING:
        if modifier not in STRING_MODIFIERS:
            raise bad_request(f"the modifier :{modifier} is not supported on "
                              f"{parameter.name} (string: :exact, :contains)",
                              code="not-supported")
    elif modifier:
        raise bad_request(f"the modifier :{modifier} is not supported on {parameter.name}",
                          code="not-supported")
    written = f"{parameter.name}:{modifier}" if modifier else parameter.name
    alternatives = [part for part in split_escaped(value, ",") if part]
    if not alternatives:
        return None
    limit = max_alternatives(parameter.name)
    if len(alternatives) > limit:
        raise bad_request(f"{written} takes at most {limit} comma-separated alternatives, "
                          f"not {len(alternatives)}", code="too-costly")
    for part in alternatives:
        if len(part) > MAX_VALUE_LENGTH:
            raise bad_request(f"{written}: a value is at most {MAX_VALUE_LENGTH} "
                              f"characters, not {len(part)}")
    if parameter.type is ParamType.STRING:
        values = tuple(map(unescape, alternatives))
        if modifier == "contains":
            for text in values:
                searched = _searched(parameter.name, text)
                if 0 < len(searched) < MIN_CONTAINS:
                    raise bad_request(f"{written} needs at least {MIN_CONTAINS} characters "
                                      f"to search for, not {searched!r}", code="too-costly")
        return StringCriterion(parameter.name, modifier, values)
    if parameter.type is ParamType.TOKEN:
        return TokenCriterion(parameter.name, tuple(map(_token, alternatives)))
    return ReferenceCriterion(parameter.name, tuple(
        _reference(parameter, unescape(part)) for part in alternatives))


def _token(value: str) -> Token:
    # FHIR R4 search.html#token: [code], [system]|[code], |[code] (no system)
    parts = split_escaped(value, "|", maxsplit=1)
    if len(parts) == 1:
        return Token(None, unescape(parts[0]))
    return Token(unescape(parts[0]), unescape(parts[1]))


def _reference(parameter: Parameter, value: str) -> str:
    # FHIR R4 search.html#reference: [id], [type]/[id] or an absolute URL ending so.
    segments = value.rstrip("/").split("/")
    if len(segments) >= 2:
        if segments[-2] != parameter.target:
            raise bad_request(f"{parameter.name} refers to a {parameter.target}, "
                              f"not {value!r}")
        segments = segments[-1:]
    if not valid_id(segments[0]):
        raise bad_request(f"{value!r} is not a valid reference for {parameter.name}")
    return segments[0]
