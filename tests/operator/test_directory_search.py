"""Recipient suggestions (``operator/directorysearch.py``) asked of the running
environment's trust space over HTTPS with an operator's certificate: what is found
by which words, what each suggestion says, hostile and short queries, the cache,
and the trust space out of reach."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from mssante.domain.mailboxes import MailboxType, Rules
from mssante.errors import DirectoryUnavailable, TrustSpaceUnavailable
from mssante.operator.directorysearch import (
    MAX_LIMIT,
    MAX_QUERY,
    DirectorySearch,
    Suggestion,
    clean_query,
    suggestion,
)
from mssante.publishing.client import DirectoryClient
from tests.conftest import RunningEnvironment

HOSPITAL = "ch-xyz.mssante.fr"
DUPONT = "dupont@ch-xyz.mssante.fr"
CARDIOLOGIE = "cardiologie@ch-xyz.mssante.fr"
APP = "compte_rendu_patient_noreply@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"


def searcher(environment: RunningEnvironment, *, url: str | None = None,
             timeout: float = 5.0, cache_seconds: float = 0.0) -> DirectorySearch:
    """A search as the hospital's operator makes it, with its certificate."""
    config = environment.service(HOSPITAL).config
    client = DirectoryClient(url or config.trust.url, ca_file=config.tls.ca_file,
                             cert_file=config.tls.cert_file, key_file=config.tls.key_file,
                             timeout=timeout)
    return DirectorySearch(client, cache_seconds=cache_seconds)


class Searcher:
    """A DirectorySearch used from the test's thread (it runs on the environment's loop)."""

    def __init__(self, environment: RunningEnvironment, search: DirectorySearch) -> None:
        self.environment = environment
        self.search = search

    def __call__(self, query: str, limit: int = 10) -> list[Suggestion]:
        return self.environment.runner.call(self.search.search(query, limit))

    def addresses(self, query: str, limit: int = 10) -> list[str]:
        return [s.address for s in self(query, limit)]

    def close(self) -> None:
        self.environment.runner.call(self.search.aclose())


@pytest.fixture(scope="module")
def find(environment: RunningEnvironment) -> Iterator[Searcher]:
    """A search without cache, once the demo mailboxes are in the directory."""
    found = Searcher(environment, searcher(environment))
    wanted = {DUPONT, CARDIOLOGIE, APP, MARTIN}
    environment.wait_for(lambda: wanted <= set(found.addresses("xyz", 50))
                         | set(found.addresses("martin", 50)),
                         what="the demo mailboxes in the directory")
    yield found
    found.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_by_the_beginning_of_a_family_name(find: Searcher) -> None:
    for typed in ("dup", "dupo", "dupont"):
        assert find.addresses(typed)[0] == DUPONT, typed
    assert MARTIN in find.addresses("mar")


def test_a_suggestion_says_who_what_and_which_mailbox(find: Searcher) -> None:
    dupont = next(s for s in find("dupont") if s.address == DUPONT)
    assert dupont == Suggestion(
        address=DUPONT, mailbox_type=MailboxType.PER, mailbox_type_label="Nominative",
        display_name="Dr Paul DUPONT", profession="Médecin",
        specialty="Cardiologie et maladies vasculaires",
        organisation="CENTRE HOSPITALIER XYZ", service="", city="75013 PARIS")
    martin = next(s for s in find("jean martin") if s.address == MARTIN)
    assert (martin.display_name, martin.profession, martin.specialty, martin.organisation) == (
        "Dr Jean MARTIN", "Médecin", "Médecine générale", "CABINET MEDICAL MARTIN")
    by_address = {s.address: s for s in find("centre hospitalier xyz", 50)}
    assert (by_address[CARDIOLOGIE].mailbox_type, by_address[CARDIOLOGIE].mailbox_type_label
            ) == (MailboxType.ORG, "Organisationnelle")
    assert (by_address[APP].mailbox_type, by_address[APP].mailbox_type_label) == (
        MailboxType.APP, "Applicative")
    for each in by_address.values():  # a name for every mailbox, a person's or not
        assert each.display_name
        assert each.organisation == "CENTRE HOSPITALIER XYZ"


def test_by_given_name_profession_organisation_and_place(find: Searcher) -> None:
    assert DUPONT in find.addresses("paul")
    assert MARTIN in find.addresses("jean")
    assert DUPONT in find.addresses("cardio")
    assert {DUPONT, CARDIOLOGIE, APP} <= set(find.addresses("centre hosp", 50))
    assert MARTIN in find.addresses("cabinet medical")
    assert MARTIN in find.addresses("martin lyon")
    assert DUPONT not in find.addresses("martin lyon")


def test_by_the_beginning_of_an_address(find: Searcher) -> None:
    assert find.addresses("dupont@")[0] == DUPONT
    assert find.addresses("dupont@ch-xyz.mssante.fr") == [DUPONT]
    assert find.addresses("jean.martin@med") == [MARTIN]
    assert find.addresses("Cardiologie@CH") == [CARDIOLOGIE]
    assert find.addresses("compte_rendu")[0] == APP  # the local part's words
    assert find.addresses("dupont@gmail.com") == []


def test_case_and_accents_do_not_count(find: Searcher) -> None:
    for typed in ("DUPONT", "Dupont", "dUpOnT", "Dùpônt"):
        assert find.addresses(typed)[0] == DUPONT, typed
    for typed in ("médecine générale", "MEDECINE GENERALE", "Médecine Générale",
                  "medecine generale"):
        assert MARTIN in find.addresses(typed), typed


def test_accented_names_are_found_without_their_accents(environment: RunningEnvironment,
                                                        find: Searcher) -> None:
    operator = environment.service(HOSPITAL)
    store = operator.store
    address = "unite.helene@ch-xyz.mssante.fr"
    rules = Rules(social_may_hold_per=operator.config.operator.social_may_hold_per)
    environment.runner.call(store.create_mailbox(
        address, MailboxType.ORG, rules=rules, responsible=[DUPONT],
        description="Unité Hélène Boucher", service="Unité Hélène Boucher",
        structure="1750000001"))
    try:
        environment.wait_for(lambda: address in find.addresses("hélène boucher"),
                             what="the new mailbox in the directory")
        for typed in ("helene", "HÉLÈNE", "Helene Bouch", "hélene", "unite helene"):
            assert address in find.addresses(typed), typed
        found = next(s for s in find("helene boucher") if s.address == address)
        assert found.display_name == "Unité Hélène Boucher"  # its service: no person
        assert found.service == "Unité Hélène Boucher"
    finally:
        environment.runner.call(store.delete_mailbox(address))


def test_the_limit(find: Searcher) -> None:
    assert len(find("xyz", 50)) >= 3
    assert len(find("xyz", 1)) == 1
    assert len(find("xyz", 2)) == 2
    assert find("xyz", 0) == []
    assert find("xyz", -3) == []
    assert len(find("xyz", 10_000)) <= MAX_LIMIT  # capped, not refused


def test_empty_and_too_short_queries_ask_nothing(environment: RunningEnvironment) -> None:
    nowhere = Searcher(environment, searcher(environment, url=f"https://127.0.0.1:{free_port()}"))
    try:
        for typed in ("", "   ", "d", " d ", "%", "**", "''", "\x00d\x00", "\u200bd", "é",
                      "-*-", "\t\n"):
            assert nowhere(typed) == [], repr(typed)  # no request: nothing to fail
        with pytest.raises(DirectoryUnavailable):
            nowhere("du")  # two letters: asked
    finally:
        nowhere.close()


def test_hostile_queries_are_only_words(find: Searcher) -> None:
    for typed in ('"dupont"', "'dupont'", "dupont%", "dup*", "dupont; --", "dupont)",
                  "(dupont", "dupont\\", "\x00dupont\x07", "%dupont%", "dupont--",
                  "<dupont>"):
        assert find.addresses(typed)[:1] == [DUPONT], repr(typed)
    # operators and injected text are words like any other: each must match
    for typed in ("dupont' OR '1'='1", "dupont AND", "dupont\r\nBcc: x", "dupont OR paul"):
        assert find.addresses(typed) == [], repr(typed)
    for typed in ("%%", "_", "*", "' OR 1=1 --", "dupont" * 1000, "x" * 100_000,
                  "\U0001f600\U0001f600", "中文", "\ud800zz\udfff", "zz\u202e\ufeff"):
        assert isinstance(find(typed), list), repr(typed[:20])


def test_clean_query() -> None:
    assert clean_query("  Hélène \t Dupont\n") == "Hélène Dupont"
    assert clean_query("He\u0301le\u0300ne") == "Hélène"  # NFC
    assert clean_query("du\x00pont") == "du pont"
    assert clean_query("x") is None and clean_query("%%") is None
    long = clean_query("a" * 500)
    assert long is not None and len(long) == MAX_QUERY


def test_answers_are_cached_briefly_and_failures_are_not(environment: RunningEnvironment,
                                                         find: Searcher) -> None:
    cached = Searcher(environment, searcher(environment, cache_seconds=600.0))
    working = cached.search.client
    dead = searcher(environment, url=f"https://127.0.0.1:{free_port()}").client
    try:
        first = cached("dupont")
        assert first and first[0].address == DUPONT
        cached.search.client = dead  # the trust space is now out of reach
        assert cached("dupont") == first  # the same query: from the cache
        assert cached("  DUPONT ") == first  # the same once cleaned and case-folded
        with pytest.raises(DirectoryUnavailable):
            cached("dupont", 3)  # another limit is another query
        with pytest.raises(DirectoryUnavailable):
            cached("martin")
        cached.search.cache_seconds = 0.0  # expired
        with pytest.raises(DirectoryUnavailable):
            cached("dupont")
        cached.search.client = working
        assert cached.addresses("martin")[0] == MARTIN  # the failure was not kept
    finally:
        environment.runner.call(dead.aclose())
        cached.close()


def test_the_trust_space_out_of_reach(environment: RunningEnvironment) -> None:
    nowhere = Searcher(environment, searcher(environment, url=f"https://127.0.0.1:{free_port()}"))
    try:
        with pytest.raises(DirectoryUnavailable) as refused:
            nowhere("dupont")
        assert str(refused.value) == "Annuaire indisponible"
        assert refused.value.reason  # the cause, for the log
        assert isinstance(refused.value, TrustSpaceUnavailable)
    finally:
        nowhere.close()


def test_a_trust_space_that_never_answers(environment: RunningEnvironment) -> None:
    with socket.socket() as silent:  # accepts connections, never speaks TLS
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        mute = Searcher(environment, searcher(environment, url=f"https://127.0.0.1:{port}",
                                              timeout=0.5))
        try:
            with pytest.raises(DirectoryUnavailable) as refused:
                mute("dupont")
            assert "Timeout" in refused.value.reason
        finally:
            mute.close()


def test_a_url_without_the_directory(environment: RunningEnvironment) -> None:
    config = environment.service(HOSPITAL).config
    wrong = Searcher(environment, searcher(environment, url=f"{config.trust.url}/nothing"))
    try:
        with pytest.raises(DirectoryUnavailable) as refused:
            wrong("dupont")
        assert "404" in refused.value.reason
    finally:
        wrong.close()


def test_each_operator_process_offers_the_search(environment: RunningEnvironment,
                                                 find: Searcher) -> None:
    for operator in environment.env.operators:
        runtime: Any = operator.runtime
        assert runtime.directory is operator.directory is not None
        found = environment.runner.call(runtime.directory.search("dupont cardio"))
        assert found[0].address == DUPONT


def test_answers_of_the_trust_space_that_name_no_mailbox_are_dropped() -> None:
    per = {"address": "A.Person@X.mssante.fr", "type": "per", "civility": "MME",
           "given_name": "Anne", "family_name": "PERSONNE", "profession": "Infirmier"}
    made = suggestion(per)
    assert made is not None
    assert (made.address, made.mailbox_type, made.display_name, made.specialty) == (
        "a.person@x.mssante.fr", MailboxType.PER, "Mme Anne PERSONNE", "")
    other = suggestion({**per, "civility": "XX"})
    assert other is not None and other.display_name == "XX Anne PERSONNE"
    for broken in ({**per, "type": "PAT"}, {**per, "type": "NOPE"}, {**per, "type": None},
                   {**per, "address": ""}, {**per, "address": 42}, {}):
        assert suggestion(broken) is None, broken
    cab = suggestion({"address": "cab@x.mssante.fr", "type": "CAB", "organisation": "CAB X",
                      "profession": ["not", "text"]})
    assert cab is not None
    assert (cab.mailbox_type_label, cab.display_name, cab.profession) == ("Cabinet", "CAB X", "")
