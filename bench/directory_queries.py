"""A fixed set of directory queries, each made from one target mailbox.

``make_queries(rows, count, seed)`` picks target rows and writes for each what a user
types in a recipient field to find it, then the FHIR search a client program would
send for the same target. Same rows, count and seed: same queries, in the same order.

The mix of kinds (``KIND_WEIGHTS``) is an assumption, not a measurement: names typed
while typing (prefixes), whole names in both orders, a name with a city, a specialty
or a department, and organisational mailboxes found by service, organisation name
and city. About ``TYPO_SHARE`` of the queries then lose one letter from one word of
five letters or more. Accents are kept or removed at random (per query), and the
case is lower most of the time, otherwise capitalised or upper.

Relevance is target-based: a query is answered well when its target comes back near
the top. Other mailboxes that answer the query as well (another Jean Dupont, another
cardiology service in Lyon) are not credited; this under-counts every system in the
same way.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from mssante.directory.extract import ExtractRow
from mssante.directory.generate import CITIES, ascii_slug
from mssante.directory.text import words
from mssante.domain.mailboxes import MailboxType

PERSON_TYPES = frozenset({MailboxType.PER, MailboxType.CAB})
ORGANISATION_TYPES = frozenset({MailboxType.ORG, MailboxType.APP})

# Assumed shares of what people type in a recipient field (see the module docstring).
KIND_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("family prefix", 15.0),  # "dup", "lefeb": while typing
    ("family", 10.0),  # "dupont"
    ("family given", 15.0),  # "dupont jean"
    ("given family", 12.0),  # "jean dupont"
    ("given family prefix", 5.0),  # "jean dup": while typing
    ("family city", 10.0),  # "dupont lyon"
    ("family specialty", 8.0),  # "dupont cardio", "martin infirm"
    ("family department", 5.0),  # "dupont 69"
    ("service city", 10.0),  # ORG: "cardiologie lyon"
    ("organisation name", 10.0),  # ORG/APP: "clinique du parc urgences", "ch nantes"
)
ORGANISATION_KINDS = frozenset({"service city", "organisation name"})

# What a query was made from: the fields of the target it names, and whether its last
# word is being typed (a prefix). An answer is *equivalent* to the target when those
# fields hold every word of the query as typed before any typo (the last one as a
# prefix where it is being typed): another Jean Dupont for "dupont jean".
KIND_FIELDS: dict[str, tuple[tuple[str, ...], bool]] = {
    "family prefix": (("family_name",), True),
    "family": (("family_name",), False),
    "family given": (("family_name", "given_name"), False),
    "given family": (("family_name", "given_name"), False),
    "given family prefix": (("family_name", "given_name"), True),
    "family city": (("family_name", "routing_line"), False),
    "family specialty": (("family_name", "profession_label", "skill_label"), True),
    "family department": (("family_name", "department"), False),
    "service city": (("service", "routing_line"), False),
    "organisation name": (("legal_name", "trade_name", "service", "routing_line"), False),
}
TYPO_SHARE = 0.15
TYPO_MIN_LENGTH = 5

# Words nobody types to find a name.
_STOP = frozenset({"de", "du", "des", "la", "le", "les", "l", "d", "et", "en", "a", "au",
                   "aux", "option", "qualifie", "qualifiee"})
_WORD = re.compile(r"[^\W_]+")

# L6 of the extract holds the city in upper case without accents; people type the
# city's usual spelling.
_CITY_NAMES = {ascii_slug(city.name).replace("-", " ").upper(): city.name for city in CITIES}


@dataclass(frozen=True)
class FhirQuery:
    kind: str
    path: str  # e.g. "/fhir/Practitioner"
    params: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Query:
    text: str
    target: str  # the address the query was made from
    kind: str
    typo: bool
    fhir: FhirQuery
    intended: str  # the text before the typo (``text`` when there is none)

    def equivalent(self, row: ExtractRow) -> bool:
        """Whether ``row`` answers the query as well as the target (``KIND_FIELDS``)."""
        names, typing = KIND_FIELDS[self.kind]
        have = {w for name in names for w in words(str(getattr(row, name)))}
        wanted = words(self.intended)
        if not wanted:
            return False
        if typing:
            *complete, last = wanted
            if not any(w.startswith(last) for w in have):
                return False
            return all(w in have for w in complete)
        return all(w in have for w in wanted)


def strip_accents(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value)
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def city_of(row: ExtractRow) -> str:
    """The city as people write it: ``Saint-Étienne`` for L6 ``42000 SAINT ETIENNE``."""
    line = row.routing_line.strip()
    if row.postal_code and line.startswith(row.postal_code):
        line = line[len(row.postal_code):].strip()
    return _CITY_NAMES.get(line, line.title())


def _label_words(label: str) -> list[str]:
    return [w for w in _WORD.findall(label) if len(w) >= 4 and strip_accents(w).lower()
            not in _STOP]


class _Maker:
    def __init__(self, rows: Sequence[ExtractRow], seed: int) -> None:
        self.rng = random.Random(seed)
        self.persons = [r for r in rows if r.mailbox_type in PERSON_TYPES and r.family_name]
        self.services = [r for r in rows if r.mailbox_type is MailboxType.ORG and r.service]
        self.organisations = [r for r in rows
                              if r.mailbox_type in ORGANISATION_TYPES and r.legal_name]
        if not self.persons or not self.services or not self.organisations:
            raise ValueError("the rows need person, ORG and APP mailboxes")

    def prefix(self, word: str) -> str:
        """What is typed of ``word`` so far: 3 to 6 letters (the whole word if shorter)."""
        plain = word.replace(" ", "")
        if len(plain) <= 3:
            return word
        cut = self.rng.randint(3, min(6, len(plain)))
        # Count letters, not spaces, in names like "Le Gall".
        out, letters = [], 0
        for char in word:
            if letters == cut:
                break
            out.append(char)
            letters += char != " "
        return "".join(out)

    def specialty(self, row: ExtractRow) -> str:
        words = _label_words(row.skill_label) or _label_words(row.profession_label)
        word = self.rng.choice(words)
        if len(word) > 6 and self.rng.random() < 0.5:
            return word[:self.rng.randint(5, 7)]  # "cardio", "infirm"
        return word

    def organisation_words(self, row: ExtractRow) -> str:
        name_words = _label_words(row.legal_name) or _WORD.findall(row.legal_name)
        picked = name_words[:self.rng.randint(1, min(3, len(name_words)))]
        extra = self.rng.random()
        if extra < 0.4 and row.service:
            picked += _label_words(row.service)[:1] or [row.service]
        elif extra < 0.8:
            picked.append(city_of(row))
        return " ".join(picked)

    def text(self, kind: str) -> tuple[str, ExtractRow]:
        rng = self.rng
        if kind in ORGANISATION_KINDS:
            if kind == "service city":
                row = rng.choice(self.services)
                service = " ".join(_label_words(row.service)[:2]) or row.service
                return f"{service} {city_of(row)}", row
            row = rng.choice(self.organisations)
            return self.organisation_words(row), row
        row = rng.choice(self.persons)
        family, given = row.family_name, row.given_name or row.family_name
        if kind == "family prefix":
            return self.prefix(family), row
        if kind == "family":
            return family, row
        if kind == "family given":
            return f"{family} {given}", row
        if kind == "given family":
            return f"{given} {family}", row
        if kind == "given family prefix":
            return f"{given} {self.prefix(family)}", row
        if kind == "family city":
            return f"{family} {city_of(row)}", row
        if kind == "family specialty":
            return f"{family} {self.specialty(row)}", row
        if kind == "family department":
            return f"{family} {row.department}", row
        raise ValueError(kind)

    def styled(self, text: str) -> str:
        if self.rng.random() < 0.5:
            text = strip_accents(text)
        draw = self.rng.random()
        if draw < 0.7:
            return text.lower()
        if draw < 0.9:
            return " ".join(w[:1].upper() + w[1:].lower() for w in text.split(" "))
        return text.upper()

    def typo(self, text: str) -> str | None:
        """``text`` with one letter deleted from one of its words of 5 letters or more."""
        spans = [m.span() for m in _WORD.finditer(text)
                 if len(m.group()) >= TYPO_MIN_LENGTH and not m.group().isdigit()]
        if not spans:
            return None
        start, end = self.rng.choice(spans)
        cut = self.rng.randrange(start, end)
        return text[:cut] + text[cut + 1:]

    def fhir(self, row: ExtractRow) -> FhirQuery:
        rng = self.rng
        if row.mailbox_type in ORGANISATION_TYPES:
            if rng.random() < 0.7:
                name = (_label_words(row.legal_name) or [row.legal_name])[0]
                return FhirQuery("Organization address-city + name", "/fhir/Organization",
                                 (("address-city", city_of(row)), ("name", name),
                                  ("_count", "10")))
            return FhirQuery("Organization identifier", "/fhir/Organization",
                             (("identifier", row.structure_id),))
        draw = rng.random()
        local = row.address.partition("@")[0]
        if draw < 0.30:
            return FhirQuery("Practitioner family + given", "/fhir/Practitioner",
                             (("family", row.family_name), ("given", row.given_name),
                              ("_count", "10")))
        if draw < 0.50:
            return FhirQuery("Practitioner name (prefix)", "/fhir/Practitioner",
                             (("name", self.prefix(row.family_name)), ("_count", "10")))
        if draw < 0.65 and len(local) >= 5:  # the API needs 3 characters for :contains
            start = rng.randrange(0, max(1, len(local) - 5))
            fragment = local[start:start + rng.randint(5, 9)]
            return FhirQuery("Practitioner mailbox-mss:contains", "/fhir/Practitioner",
                             (("mailbox-mss:contains", fragment), ("_count", "10")))
        if draw < 0.85 and row.pp_national_id:
            return FhirQuery("Practitioner identifier", "/fhir/Practitioner",
                             (("identifier", row.pp_national_id),))
        return FhirQuery("PractitionerRole address-postalcode + _include",
                         "/fhir/PractitionerRole",
                         (("address-postalcode", row.postal_code),
                          ("_include", "PractitionerRole:organization"), ("_count", "10")))


def make_queries(rows: Sequence[ExtractRow], count: int = 1000, seed: int = 0) -> list[Query]:
    """``count`` queries made from ``rows`` (see the module docstring), deterministic."""
    maker = _Maker(rows, seed)
    total = sum(w for _, w in KIND_WEIGHTS)
    kinds: list[str] = []
    for kind, weight in KIND_WEIGHTS:
        kinds += [kind] * round(count * weight / total)
    kinds = (kinds + [KIND_WEIGHTS[0][0]] * count)[:count]
    maker.rng.shuffle(kinds)
    drafts = [(kind, *maker.text(kind)) for kind in kinds]
    # Typos on a fixed share of the queries that have a long enough word.
    eligible = [i for i, (_, text, _) in enumerate(drafts)
                if any(len(w) >= TYPO_MIN_LENGTH and not w.isdigit()
                       for w in _WORD.findall(text))]
    typo_at = set(maker.rng.sample(eligible, min(len(eligible), round(count * TYPO_SHARE))))
    queries: list[Query] = []
    for i, (kind, text, row) in enumerate(drafts):
        styled = maker.styled(text)
        typo = maker.typo(styled) if i in typo_at else None
        queries.append(Query(typo or styled, row.address, kind, typo is not None,
                             maker.fhir(row), styled))
    return queries


def describe_mix(queries: Sequence[Query]) -> list[str]:
    """Lines describing the mix: kinds with an example, typos, FHIR kinds."""
    by_kind = Counter(q.kind for q in queries)
    examples: dict[str, str] = {}
    for q in queries:
        examples.setdefault(q.kind, q.text)
    lines = ["| query kind | count | typos | example |", "|---|---:|---:|---|"]
    for kind, _ in KIND_WEIGHTS:
        typos = sum(1 for q in queries if q.kind == kind and q.typo)
        lines.append(f"| {kind} | {by_kind[kind]} | {typos} | `{examples.get(kind, '')}` |")
    typo_examples = [q.text for q in queries if q.typo][:3]
    lines.append(f"| all | {len(queries)} | {sum(q.typo for q in queries)} | typos: "
                 + ", ".join(f"`{t}`" for t in typo_examples) + " |")
    fhir = Counter(q.fhir.kind for q in queries)
    lines.append("")
    lines.append("FHIR searches from the same targets: "
                 + ", ".join(f"{kind} {n}" for kind, n in sorted(fhir.items())))
    return lines
