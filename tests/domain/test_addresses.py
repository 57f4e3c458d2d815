from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.domain.addresses import (
    Address,
    AddressSyntaxError,
    Group,
    Mailbox,
    is_trust_space_domain,
    mailboxes,
    parse_address,
    parse_address_list,
    parse_one_mailbox,
    readable,
)
from mssante.errors import InvalidAddress

atom = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~-", min_size=1,
               max_size=12)
label = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\Z")


@given(local=st.lists(atom, min_size=1, max_size=3).map(".".join),
       labels=st.lists(label, min_size=2, max_size=4))
def test_valid_addresses_round_trip(local: str, labels: list[str]) -> None:
    domain = ".".join(labels)
    text = f"{local}@{domain.upper()}"
    address = parse_address(text)
    assert address.local == local
    assert address.domain == domain  # lower-cased
    assert str(parse_address(str(address))) == str(address)
    assert parse_address(f"<{text}>") == address


@given(st.text(max_size=80))
def test_parser_never_crashes(text: str) -> None:
    try:
        address = parse_address(text)
    except InvalidAddress:
        return
    assert "@" in str(address)
    assert address.domain == address.domain.lower()


@pytest.mark.parametrize("text", [
    "", "no-at-sign", "@ch-xyz.mssante.fr", "dupont@", "a..b@x.fr", ".a@x.fr", "a.@x.fr",
    "dupont@localhost", "dupont@-bad.fr", "dup ont@x.fr", '"quoted"@x.fr',
    "x" * 65 + "@x.fr", "a@" + "b" * 64 + ".fr",
])
def test_invalid_addresses(text: str) -> None:
    with pytest.raises(InvalidAddress):
        parse_address(text)


def test_trust_space_namespace() -> None:
    assert is_trust_space_domain("ch-xyz.mssante.fr")
    assert is_trust_space_domain("MSSANTE.FR")
    assert not is_trust_space_domain("gmail.com")
    assert not is_trust_space_domain("evilmssante.fr")
    assert parse_address("dupont@ch-xyz.mssante.fr").in_trust_space_namespace
    assert not parse_address("someone@gmail.com").in_trust_space_namespace


# --- address headers: the one RFC 5322 §3.4 parser -----------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    # addr-spec (RFC 5322 §3.4.1)
    ("dupont@ch-xyz.mssante.fr", [Mailbox(None, "dupont", "ch-xyz.mssante.fr")]),
    ("jean.martin@medecin.mssante.fr", [Mailbox(None, "jean.martin", "medecin.mssante.fr")]),
    (" dupont (Paul) @ (hôpital) ch-xyz.mssante.fr (cardio) ",
     [Mailbox(None, "dupont", "ch-xyz.mssante.fr")]),  # CFWS around the parts
    ('"jean dupont"@x.fr', [Mailbox(None, "jean dupont", "x.fr")]),
    ('"a\\"b"@x.fr', [Mailbox(None, 'a"b', "x.fr")]),
    ("a@[192.0.2.1]", [Mailbox(None, "a", "[192.0.2.1]")]),
    # name-addr
    ("Dr Paul Dupont <dupont@x.fr>", [Mailbox("Dr Paul Dupont", "dupont", "x.fr")]),
    ("Dr. Paul  Dupont <dupont@x.fr>",  # obs-phrase
     [Mailbox("Dr. Paul Dupont", "dupont", "x.fr")]),
    ('"Dupont, Paul" <dupont@x.fr>', [Mailbox("Dupont, Paul", "dupont", "x.fr")]),
    ('"Dupont" Paul<dupont@x.fr>', [Mailbox("Dupont Paul", "dupont", "x.fr")]),
    ('"" <dupont@x.fr>', [Mailbox(None, "dupont", "x.fr")]),
    ("Hôpital Nord <contact@x.fr>", [Mailbox("Hôpital Nord", "contact", "x.fr")]),  # RFC 6532
    ("=?utf-8?q?Andr=C3=A9?= <a@x.fr>", [Mailbox("=?utf-8?q?Andr=C3=A9?=", "a", "x.fr")]),
    ("<dupont@x.fr>", [Mailbox(None, "dupont", "x.fr")]),
    ("Paul (le (vrai) Dupont) <dupont@x.fr>", [Mailbox("Paul", "dupont", "x.fr")]),
    # obs-route (RFC 5322 §4.4)
    ("<@relay.fr,@gw.fr:jean@x.fr>", [Mailbox(None, "jean", "x.fr", "@relay.fr,@gw.fr")]),
    ("<,@relay.fr,,@gw.fr:jean@x.fr>", [Mailbox(None, "jean", "x.fr", "@relay.fr,@gw.fr")]),
    # lists and groups
    ("a@x.fr, B <b@x.fr>", [Mailbox(None, "a", "x.fr"), Mailbox("B", "b", "x.fr")]),
    ("a@x.fr, , b@x.fr,", [Mailbox(None, "a", "x.fr"), Mailbox(None, "b", "x.fr")]),
    ("Equipe: a@x.fr, B <b@x.fr>;, c@x.fr", [
        Group("Equipe", (Mailbox(None, "a", "x.fr"), Mailbox("B", "b", "x.fr"))),
        Mailbox(None, "c", "x.fr")]),
    ("Undisclosed recipients:;", [Group("Undisclosed recipients", ())]),
    ("Vide: , (rien) ,;", [Group("Vide", ())]),
    ("", []),
    ("  (only a comment)  ", []),
])
def test_address_list_forms(text: str, expected: list[object]) -> None:
    assert list(parse_address_list(text)) == expected


@pytest.mark.parametrize("text", [
    # the two spoofs of issue 9 and their kin
    "[ cardiologie@ch-xyz.mssante.fr(]<dupont@ch-xyz.mssante.fr>",
    "<@dupont@ch-xyz.mssante.fr>,<cardiologie@ch-xyz.mssante.fr>,",
    "x<@dupont@ch-xyz.mssante.fr>",
    "cardiologie@ch-xyz.mssante.fr <dupont@ch-xyz.mssante.fr>",
    "Dupont <dupont@x.fr> <cardiologie@x.fr>",
    # unterminated
    "(Dr Dupont <dupont@x.fr>", '"Dr Dupont <dupont@x.fr>', "Dr <dupont@x.fr",
    "Equipe: a@x.fr", "a@[1.2.3.4", "Paul ((nested) <a@x.fr>",
    # not an address
    "Dr Dupont", "root", "<>", "@x.fr", "a@", "a@x.fr.", "a@.x.fr", ".a@x.fr", "a.@x.fr",
    "a..b@x.fr", "jean . dupont@x.fr", "jean(c).dupont@x.fr", '"a"."b"@x.fr', "a b@x.fr",
    "a@x . fr", "a@x.fr b", "[1.2.3.4] <a@x.fr>", "a@x.fr]", "a\\b@x.fr", ". Dupont <a@x.fr>",
    "A: B: c@x.fr;;", ": a@x.fr;", "a@x.fr\x00", "a@x.fr\r\n", "Dr\x7f <a@x.fr>",
    "<@relay.fr jean@x.fr>", "<@relay.fr:>", "a@x.fr;",
])
def test_what_is_not_an_address_list_is_refused(text: str) -> None:
    with pytest.raises(AddressSyntaxError) as info:
        parse_address_list(text)
    assert str(info.value)


@pytest.mark.parametrize(("text", "reason"), [
    ("", "found none"),
    ("a@x.fr, b@x.fr", "found 2"),
    ("Equipe: a@x.fr;", "found a group"),
    ("<a@x.fr>,", None),
])
def test_one_mailbox(text: str, reason: str | None) -> None:
    if reason is None:
        assert parse_one_mailbox(text) == Mailbox(None, "a", "x.fr")
        return
    with pytest.raises(AddressSyntaxError, match=reason):
        parse_one_mailbox(text)


def test_mailbox_forms_and_trust_space_view() -> None:
    quoted = Mailbox(None, "jean dupont", "x.fr")
    assert quoted.local_text == '"jean dupont"' and quoted.addr_spec == '"jean dupont"@x.fr'
    assert Mailbox(None, 'a"b\\', "x.fr").local_text == '"a\\"b\\\\"'
    assert Mailbox(None, "dupont", "CH-XYZ.mssante.fr").address() == Address(
        "dupont", "ch-xyz.mssante.fr")
    for bad in (quoted, Mailbox(None, "a", "[192.0.2.1]"), Mailbox(None, "a", "localhost")):
        with pytest.raises(InvalidAddress):
            bad.address()
    items = parse_address_list('"Dupont, Paul" <dupont@x.fr>, Equipe: a@x.fr;')
    assert mailboxes(items) == (Mailbox("Dupont, Paul", "dupont", "x.fr"),
                                Mailbox(None, "a", "x.fr"))
    assert readable(items) == "Dupont, Paul <dupont@x.fr>, Equipe: a@x.fr;"
    assert readable(parse_address_list("=?utf-8?q?Andr=C3=A9?= <a@x.fr>"),
                    lambda s: s.upper()) == "=?UTF-8?Q?ANDR=C3=A9?= <a@x.fr>"


def test_hostile_input_costs_linear_work() -> None:
    """Inputs that make backtracking parsers explode, a megabyte each (the largest header
    section read): each gives an answer, here an error, after one pass."""
    size = 1024 * 1024
    for text in ("(" * size, "(" * 30 + "a" * size, '"' + "\\a" * (size // 2), "<" * size,
                 "a." * (size // 2), "@" * size, "[" + "a" * size, "a@" * (size // 2),
                 "a," * (size // 2) + "<", "g:" * (size // 2)):
        with pytest.raises(AddressSyntaxError):
            parse_address_list(text)
    assert len(parse_address_list("a@x.fr," * (size // 8))) == size // 8


# hypothesis: generated mailboxes written out as RFC 5322 says, then read back

_atext = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-é"
_atoms = st.text(alphabet=_atext, min_size=1, max_size=8)
_dot_atoms = st.lists(_atoms, min_size=1, max_size=3).map(".".join)
_qcontent = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x17f,
                                           blacklist_characters="\x7f"), max_size=12)
_names = st.one_of(st.none(), _qcontent.filter(lambda s: s.strip() != "" and s == s.strip()))
_locals = st.one_of(_dot_atoms, _qcontent)
_domains = st.one_of(_dot_atoms, st.from_regex(r"\A\[[0-9.:a-f]{1,15}\]\Z"))
_generated = st.builds(Mailbox, _names, _locals, _domains,
                       st.one_of(st.none(), st.lists(_dot_atoms, min_size=1, max_size=2).map(
                           lambda hops: ",".join("@" + h for h in hops))))
_comments = st.sampled_from(["", " ", " (c) ", "(a (nested) \\) comment)", "\t"])


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _written(mailbox: Mailbox, around: str) -> str:
    spec = mailbox.local_text + around + "@" + around + mailbox.domain
    if mailbox.display_name is None and mailbox.route is None:
        return around + spec + around
    name = "" if mailbox.display_name is None else _quoted(mailbox.display_name)
    route = "" if mailbox.route is None else mailbox.route + ":"
    return f"{around}{name}{around}<{route}{spec}>{around}"


@given(st.lists(st.tuples(_generated, _comments), min_size=1, max_size=4))
def test_written_mailboxes_read_back(items: list[tuple[Mailbox, str]]) -> None:
    text = ",".join(_written(mailbox, around) for mailbox, around in items)
    assert list(parse_address_list(text)) == [mailbox for mailbox, _ in items]


@given(st.lists(st.tuples(_generated.map(lambda m: Mailbox(m.display_name, m.local,
                                                           m.domain)), _comments),
                max_size=3), st.text(alphabet=_atext, min_size=1, max_size=10))
def test_groups_read_back(items: list[tuple[Mailbox, str]], name: str) -> None:
    text = f"{name}:" + ",".join(_written(m, around) for m, around in items) + ";"
    assert parse_address_list(text) == (Group(name, tuple(m for m, _ in items)),)


_hostile = st.lists(st.sampled_from(
    [*'<>@,;:."()[]\\ \tax=?é', "dupont", "@ch-xyz.mssante.fr", "=?utf-8?q?x?=", "\x00",
     "\r\n"]), max_size=40).map("".join)


@given(st.one_of(_hostile, st.text(max_size=60)))
def test_arbitrary_input_gives_a_result_or_a_reason(text: str) -> None:
    """Never another exception: every reader can rely on AddressSyntaxError alone."""
    try:
        items = parse_address_list(text)
    except AddressSyntaxError as exc:
        assert str(exc)
        return
    for mailbox in mailboxes(items):
        assert mailbox.domain and "@" in mailbox.addr_spec
        # what a mailbox is written as reads back as that mailbox
        assert parse_one_mailbox(_written(mailbox, " ")) == mailbox
