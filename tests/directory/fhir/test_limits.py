"""What an anonymous search may ask of the database, on both engines: the limits of
``params`` (criteria, alternatives, :contains, value length), the size of the query
string and of a POST form, and the characters no database compares (NUL above all,
which PostgreSQL refuses). Each answer is an OperationOutcome, never a 500."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import httpx
import pytest

from mssante.directory.fhir.capability import capability_statement
from mssante.directory.fhir.outcome import FhirError
from mssante.directory.fhir.params import (
    MAX_ALTERNATIVES,
    MAX_CONTAINS,
    MAX_CRITERIA,
    MAX_ID_ALTERNATIVES,
    MAX_QUERY_BYTES,
    MAX_TOTAL_ALTERNATIVES,
    MAX_VALUE_LENGTH,
    MIN_CONTAINS,
    PARAMETERS,
    parse_conditional,
    parse_search,
)
from tests.directory.fhir.conftest import DOMAIN, ZOE, diagnostics, fetch

pytestmark = pytest.mark.asyncio(loop_scope="module")

FORM = {"content-type": "application/x-www-form-urlencoded"}


def query(*items: tuple[str, str]) -> str:
    return urlencode(items)


async def refused(client: httpx.AsyncClient, url: str, status: int = 400,
                  code: str = "too-costly", *, named: str = "", **kwargs: object) -> str:
    outcome = await fetch(client, url, status, **kwargs)  # type: ignore[arg-type]
    assert outcome["issue"][0]["code"] == code, outcome
    assert named in diagnostics(outcome), outcome
    return diagnostics(outcome)


# Denial of service through unlimited criteria -----------------------------------------

async def test_dos_many_criteria_is_refused(client: httpx.AsyncClient) -> None:
    at_limit = [("family", f"dup{i}") for i in range(MAX_CRITERIA)]
    await fetch(client, f"/fhir/Practitioner?{query(*at_limit)}")
    await refused(client, f"/fhir/Practitioner?{query(*at_limit, ('given', 'zo'))}",
                  named=str(MAX_CRITERIA))


async def test_dos_many_alternatives_in_one_parameter_is_refused(
        client: httpx.AsyncClient) -> None:
    names = [f"zz{i}" for i in range(MAX_ALTERNATIVES + 1)]
    await fetch(client, f"/fhir/Practitioner?name={','.join(names[:-1])}")
    await refused(client, f"/fhir/Practitioner?name={','.join(names)}",
                  named=str(MAX_ALTERNATIVES))
    ids = [f"8100000{i:05d}" for i in range(MAX_ID_ALTERNATIVES + 1)]
    for parameter in ("_id", "identifier"):
        await fetch(client, f"/fhir/Practitioner?{parameter}={','.join(ids[:-1])}")
        await refused(client, f"/fhir/Practitioner?{parameter}={','.join(ids)}",
                      named=str(MAX_ID_ALTERNATIVES))
    await refused(client, f"/fhir/PractitionerRole?practitioner={','.join(ids)}",
                  named=str(MAX_ID_ALTERNATIVES))


async def test_dos_many_alternatives_over_the_search_is_refused(
        client: httpx.AsyncClient) -> None:
    """Within each parameter's limit, but too many in all (the measured attack:
    40,000 ``name`` alternatives; here as many parameters as the limits leave)."""
    per = MAX_ALTERNATIVES
    items = [("name", ",".join(f"zz{p}x{i}" for i in range(per)))
             for p in range(MAX_TOTAL_ALTERNATIVES // per + 1)]
    assert len(items) <= MAX_CRITERIA
    await refused(client, f"/fhir/Practitioner?{query(*items)}",
                  named=str(MAX_TOTAL_ALTERNATIVES))


async def test_dos_many_contains_scans_is_refused(client: httpx.AsyncClient) -> None:
    """Each :contains alternative reads a whole column: 400 rare ones took 5.3 s at
    100,000 rows."""
    rare = [f"qx{i:03d}zz" for i in range(MAX_CONTAINS + 1)]
    await fetch(client, f"/fhir/Practitioner?mailbox-mss:contains={','.join(rare[:-1])}")
    await refused(client, f"/fhir/Practitioner?mailbox-mss:contains={','.join(rare)}",
                  named=str(MAX_CONTAINS))
    spread = [("mailbox-mss:contains", value) for value in rare]  # one a parameter
    await refused(client, f"/fhir/Practitioner?{query(*spread)}", named=str(MAX_CONTAINS))
    attack = [("mailbox-mss:contains", ",".join(f"qx{p}y{i}zz" for i in range(20)))
              for p in range(20)]
    await refused(client, f"/fhir/Practitioner?{query(*attack)}")


@pytest.mark.parametrize(("resource", "parameter", "short"), [
    ("Practitioner", "mailbox-mss", "zo"),
    ("Practitioner", "family", "d"),
    ("Practitioner", "name", "é-"),  # one letter once normalised
    ("Organization", "address-postalcode", "69"),
    ("Organization", "address-city", "ly"),
    ("Organization", "name", "ch"),
])
async def test_dos_short_contains_is_refused(client: httpx.AsyncClient, resource: str,
                                            parameter: str, short: str) -> None:
    message = await refused(client, f"/fhir/{resource}?{parameter}:contains={quote(short)}",
                            named=f"{parameter}:contains")
    assert f"at least {MIN_CONTAINS}" in message
    # Starts-with and :exact take any length; so does :contains from MIN_CONTAINS on.
    await fetch(client, f"/fhir/{resource}?{parameter}={quote(short)}")
    await fetch(client, f"/fhir/{resource}?{parameter}:contains=abc")


async def test_dos_long_values_are_refused(client: httpx.AsyncClient) -> None:
    await fetch(client, f"/fhir/Practitioner?family={'a' * MAX_VALUE_LENGTH}")
    await refused(client, f"/fhir/Practitioner?family={'a' * (MAX_VALUE_LENGTH + 1)}",
                  code="invalid", named=str(MAX_VALUE_LENGTH))
    await refused(client, f"/fhir/Practitioner?identifier=x|{'1' * MAX_VALUE_LENGTH}",
                  code="invalid", named="identifier")
    await refused(client, f"/fhir/Practitioner?{'f' * (MAX_VALUE_LENGTH + 1)}=x",
                  code="invalid", named=str(MAX_VALUE_LENGTH))


async def test_dos_large_query_string_is_refused(client: httpx.AsyncClient) -> None:
    """The measured attacks wrote 40,000 ``name`` or ``_id`` alternatives (here as many
    as a client's URL holds: httpx stops at 64 KiB)."""
    names = ",".join(f"n{i}" for i in range(8_000))
    await refused(client, f"/fhir/Practitioner?name={names}", 414, named=str(MAX_QUERY_BYTES))
    ids = ",".join(f"{i:012d}" for i in range(3_000))
    await refused(client, f"/fhir/Practitioner?_id={ids}", 414)
    await refused(client, f"/fhir/Practitioner/{ZOE.nat}?_format={'j' * MAX_QUERY_BYTES}", 414)
    await refused(client, f"/fhir/metadata?_format={'j' * MAX_QUERY_BYTES}", 414)


async def test_dos_large_post_form_is_refused(client: httpx.AsyncClient) -> None:
    """POST _search took a 1 MiB form: the form and the query string now share
    MAX_QUERY_BYTES."""
    ids = ",".join(f"{i:012d}" for i in range(40_000))
    await refused(client, "/fhir/Practitioner/_search", 413, method="POST",
                  content=f"_id={ids}", headers=FORM, named=str(MAX_QUERY_BYTES))
    half = "x" * (MAX_QUERY_BYTES // 2)
    await refused(client, f"/fhir/Practitioner/_search?_format=json&pad={half}", 413,
                  method="POST", content=f"pad={half}", headers=FORM)
    # A form within the limits is still a search.
    bundle = await fetch(client, "/fhir/Practitioner/_search", method="POST",
                         content="family=dupont", headers=FORM)
    assert bundle["total"] >= 1


# Characters no database compares ------------------------------------------------------

@pytest.mark.parametrize("url", [
    "/fhir/Practitioner?family=Dup%00ont",
    "/fhir/Practitioner?family:exact=%00",
    "/fhir/Organization?address-postalcode=69%00",
    "/fhir/PractitionerRole?address-postalcode:contains=690%00",
    "/fhir/Organization?address-city=ly%00on",
    "/fhir/Practitioner?mailbox-mss:contains=zoe%00dupont",
    "/fhir/Practitioner?mailbox-mss:exact=zoe.dupont%00@x.mssante.fr",
    "/fhir/Practitioner?identifier=urn:oid:1.2.250.1.71.4.2.1|8100%0000017",
    "/fhir/Practitioner?identifier=%00|810000000017",
    "/fhir/Organization?identifier=1690000001%00",
    "/fhir/Practitioner?_id=810000000017%00",
    "/fhir/PractitionerRole?practitioner=Practitioner/8100%0000017",
    "/fhir/Practitioner?mailbox-mss-type=PER%00",
    "/fhir/Practitioner?family=a%01b",
    "/fhir/Practitioner?family=a%09b",
    "/fhir/Practitioner?given=a%0Ab",
    "/fhir/Practitioner?given=a%7Fb",
    "/fhir/Practitioner?fam%00ily=x",
])
async def test_nul_and_control_characters_in_search_are_400(client: httpx.AsyncClient,
                                                            url: str) -> None:
    """PostgreSQL refuses NUL in a text value (it was a 500)."""
    message = await refused(client, url, code="invalid", named="U+00")
    parameter = url.partition("?")[2].partition("=")[0].replace("%00", "\x00")
    assert repr(parameter) in message
    posted = url.partition("?")
    await refused(client, f"{posted[0]}/_search", code="invalid", named="U+00",
                  method="POST", content=posted[2], headers=FORM)


async def test_lone_surrogates_in_search_are_400() -> None:
    """A query string decodes invalid UTF-8 into U+FFFD; a caller of ``parse_search``
    may still hand over a lone surrogate."""
    for resource, items in (("Practitioner", [("family", "a\ud800")]),
                            ("Organization", [("name:contains", "\udfffabc")]),
                            ("Practitioner", [("_format", "json\ud800")])):
        with pytest.raises(FhirError) as caught:
            parse_search(resource, items)
        assert caught.value.status == 400 and "U+D" in caught.value.diagnostics
        caught.value.outcome()  # renders
    with pytest.raises(FhirError, match=r"U\+0000"):
        parse_conditional("Practitioner", [("identifier", "urn:x|\x00")])


async def test_valid_characters_still_search(client: httpx.AsyncClient) -> None:
    """Letters beyond ASCII, spaces and punctuation are not control characters."""
    bundle = await fetch(client, "/fhir/Practitioner?family=L%C3%A9f%C3%A8vre&given=Ir%C3%A8ne"
                                 "%20&name:contains=%E2%82%AC%F0%9F%98%80abc")
    assert bundle["total"] == 0
    found = await fetch(client, f"/fhir/Practitioner?mailbox-mss:contains=@{DOMAIN}")
    assert found["total"] >= 1


# The statement tells ------------------------------------------------------------------

async def test_capability_statement_documents_the_limits() -> None:
    rest = capability_statement("http://x/fhir")["rest"][0]
    documentation = rest["documentation"]
    for limit in (f"{MAX_CRITERIA} criteria", f"{MAX_ALTERNATIVES} comma-separated",
                  f"{MAX_ID_ALTERNATIVES} for _id", f"{MAX_TOTAL_ALTERNATIVES} in all",
                  f"{MAX_CONTAINS} :contains", f"at least {MIN_CONTAINS}",
                  f"{MAX_VALUE_LENGTH} characters", f"{MAX_QUERY_BYTES} bytes",
                  "too-costly", "control character"):
        assert limit in documentation, limit
    for resource in rest["resource"]:
        params = {p["name"]: p["documentation"] for p in resource["searchParam"]}
        assert set(params) == set(PARAMETERS[resource["type"]])
        assert f"At most {MAX_ID_ALTERNATIVES}" in params["_id"]
        assert f"At most {MAX_ALTERNATIVES}" in params["mailbox-mss"]
        assert f":contains needs at least {MIN_CONTAINS}" in params["mailbox-mss"]
