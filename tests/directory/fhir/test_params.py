"""Search parameters parsed without I/O: values, escapes, modifiers, result parameters,
and the 400s of what the API does not do."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.directory.fhir.outcome import FhirError
from mssante.directory.fhir.params import (
    PARAMETERS,
    ReferenceCriterion,
    Search,
    StringCriterion,
    Token,
    TokenCriterion,
    check_read,
    parse_conditional,
    parse_search,
    split_escaped,
    unescape,
)


def search(resource: str, query: str) -> Search:
    from urllib.parse import parse_qsl
    return parse_search(resource, parse_qsl(query, keep_blank_values=True))


def rejected(resource: str, query: str, status: int = 400) -> str:
    with pytest.raises(FhirError) as caught:
        search(resource, query)
    assert caught.value.status == status
    return caught.value.diagnostics


def test_strings_alternatives_and_repeats() -> None:
    s = search("Practitioner", "family=dup,ber&family:exact=Dupont&given:contains=zoé")
    assert s.criteria == (
        StringCriterion("family", "", ("dup", "ber")),
        StringCriterion("family", "exact", ("Dupont",)),
        StringCriterion("given", "contains", ("zoé",)),
    )
    assert s.count == 50 and s.cursor is None and s.includes == frozenset()
    assert s.link_items == (("family", "dup,ber"), ("family:exact", "Dupont"),
                            ("given:contains", "zoé"))


def test_tokens() -> None:
    s = search("Practitioner", "identifier=urn:oid:1.2.250.1.71.4.2.1|8001,|42,99"
                               "&mailbox-mss-type=PER")
    assert s.criteria == (
        TokenCriterion("identifier", (Token("urn:oid:1.2.250.1.71.4.2.1", "8001"),
                                      Token("", "42"), Token(None, "99"))),
        TokenCriterion("mailbox-mss-type", (Token(None, "PER"),)),
    )


def test_escapes() -> None:
    # FHIR R4 search.html#escaping: \, \| \$ \\ are literal characters.
    s = search("Organization", r"name=a\,b,c&identifier=sys\|x|v\|w")
    assert s.criteria == (StringCriterion("name", "", ("a,b", "c")),
                          TokenCriterion("identifier", (Token("sys|x", "v|w"),)))
    assert split_escaped(r"a\,b,c", ",") == [r"a\,b", "c"]
    assert split_escaped("a|b|c", "|", maxsplit=1) == ["a", "b|c"]
    assert unescape(r"\\\$\|\,") == "\\$|,"


@given(st.lists(st.text(min_size=1), min_size=1, max_size=4))
def test_escaping_round_trips(values: list[str]) -> None:
    def escape(value: str) -> str:
        for char in "\\,$|":
            value = value.replace(char, "\\" + char)
        return value

    written = ",".join(escape(v) for v in values)
    assert [unescape(part) for part in split_escaped(written, ",")] == values


def test_references() -> None:
    s = search("PractitionerRole", "practitioner=Practitioner/810001,810002"
                                   "&organization=http://x/fhir/Organization/1000")
    assert s.criteria == (ReferenceCriterion("practitioner", ("810001", "810002")),
                          ReferenceCriterion("organization", ("1000",)))
    assert "refers to a Practitioner" in rejected("PractitionerRole",
                                                  "practitioner=Organization/1")
    assert "not a valid reference" in rejected("PractitionerRole", "practitioner=a b")


def test_empty_values_are_ignored() -> None:
    s = search("Practitioner", "family=&given=,zo,")
    assert s.criteria == (StringCriterion("given", "", ("zo",)),)
    assert s.link_items == (("given", ",zo,"),)


def test_count_is_capped_and_checked() -> None:
    assert search("Practitioner", "_count=7").count == 7
    assert search("Practitioner", "_count=0").count == 0
    assert search("Practitioner", "_count=5000").count == 50
    for bad in ("-1", "x", "1.5", "", "٣"):
        assert "_count" in rejected("Practitioner", f"_count={bad}")
    assert "more than once" in rejected("Practitioner", "_count=1&_count=2")


def test_cursor() -> None:
    assert search("Organization", "_cursor=12").cursor == 12
    assert "_cursor" in rejected("Organization", "_cursor=abc")


def test_includes() -> None:
    s = search("PractitionerRole", "_include=PractitionerRole:practitioner"
                                   "&_include=PractitionerRole:organization:Organization")
    assert s.includes == frozenset({"practitioner", "organization"})
    assert "not supported on Practitioner" in rejected(
        "Practitioner", "_include=PractitionerRole:organization")
    assert "not supported" in rejected("PractitionerRole", "_include=PractitionerRole:role")
    assert "not supported" in rejected("PractitionerRole",
                                       "_include=PractitionerRole:organization:Practitioner")
    assert ":iterate" in rejected("PractitionerRole",
                                  "_include:iterate=PractitionerRole:organization")


def test_unknown_parameters_and_modifiers_are_rejected() -> None:
    message = rejected("Practitioner", "family=a&birthdate=2000&address-city=x")
    assert "birthdate" in message and "address-city" in message
    assert "supported:" in message
    assert ":missing" in rejected("Practitioner", "family:missing=true")
    assert ":exact" in rejected("Practitioner", "identifier:exact=1")
    assert ":text" in rejected("Organization", "mailbox-mss-type:text=ORG")
    assert "_sort" in rejected("Organization", "_sort=name")
    assert "practitioner.name" in rejected("PractitionerRole", "practitioner.name=x")


def test_format() -> None:
    assert search("Organization", "_format=json&_format=application/fhir%2Bjson").criteria == ()
    assert "application/fhir+json" in rejected("Organization", "_format=xml", status=406)


def test_every_resource_has_the_required_parameters() -> None:
    for resource in PARAMETERS:
        assert {"_id", "mailbox-mss", "mailbox-mss-type"} <= set(PARAMETERS[resource])
    assert {"identifier", "name", "family", "given"} <= set(PARAMETERS["Practitioner"])
    assert {"identifier", "name", "address-city",
            "address-postalcode"} <= set(PARAMETERS["Organization"])
    assert {"address-city", "address-postalcode", "practitioner",
            "organization"} <= set(PARAMETERS["PractitionerRole"])


def test_conditional_and_read_parameters() -> None:
    criterion = parse_conditional("Practitioner", [("identifier", "s|v"), ("_format", "json")])
    assert criterion == TokenCriterion("identifier", (Token("s", "v"),))
    for items in ([], [("identifier", "")], [("identifier", "a"), ("identifier", "b")]):
        with pytest.raises(FhirError, match="one identifier"):
            parse_conditional("Practitioner", items)
    with pytest.raises(FhirError, match="by identifier only"):
        parse_conditional("Organization", [("name", "x")])
    check_read([("_format", "json")])
    with pytest.raises(FhirError, match="unknown parameter"):
        check_read([("_summary", "true")])
