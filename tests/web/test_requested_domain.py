"""Which document an ``emailaddress`` asks for, without HTTP: whatever the text, the
answer is a domain the operator serves or a refusal with its status, never a crash."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.web.autoconfig import ClientSettings, Refusal, requested_domain

MALFORMED = "emailaddress: not a mail address (local@domain, at most 254 characters)"
EMPTY = ("emailaddress: empty; give the address, e.g. "
         "emailaddress=dupont@ch-xyz.mssante.fr")
NOT_SERVED = re.compile(r"[a-z0-9.-]+ is not a domain of this operator "
                        r"\(it serves ch-xyz\.mssante\.fr, hopital-xyz\.mssante\.fr\)")
SETTINGS = ClientSettings(domains=("ch-xyz.mssante.fr", "hopital-xyz.mssante.fr"),
                          display_name="MSSanté", servers=(), psc_issuer_host=None)


@given(st.text(max_size=600))
def test_any_text_is_a_served_domain_or_a_refusal(text: str) -> None:
    try:
        domain = requested_domain(SETTINGS, [text])
    except Refusal as refusal:
        # the reasons are fixed, or name a domain the parser accepted: never raw input
        if refusal.status == 400:
            assert str(refusal) in (MALFORMED, EMPTY)
        else:
            assert refusal.status == 404 and NOT_SERVED.fullmatch(str(refusal))
    else:
        assert domain in SETTINGS.domains


@given(st.lists(st.text(max_size=20), min_size=2, max_size=5))
def test_more_than_one_address_is_refused(values: list[str]) -> None:
    with pytest.raises(Refusal, match="give it once") as refused:
        requested_domain(SETTINGS, values)
    assert refused.value.status == 400


def test_each_served_domain_has_its_document() -> None:
    assert requested_domain(SETTINGS, []) == "ch-xyz.mssante.fr"
    assert requested_domain(SETTINGS, ["a@HOPITAL-XYZ.mssante.fr"]) == "hopital-xyz.mssante.fr"
    with pytest.raises(Refusal) as refused:
        requested_domain(SETTINGS, ["a@medecin.mssante.fr"])
    assert refused.value.status == 404
