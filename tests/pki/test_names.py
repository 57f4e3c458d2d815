"""DN building, printing and comparison."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from mssante.pki.names import dn_string, parse_dn, same_attributes, same_dn, subject_name

WHITELIST_DN = "CN=mta.ch-xyz.mssante.fr,OU=318310021300028,O=CH XYZ,ST=Paris (75),C=FR"


def test_subject_prints_cn_first_like_the_ans_whitelist() -> None:
    name = subject_name(common_name="mta.ch-xyz.mssante.fr", organisation="CH XYZ",
                        organisation_unit="318310021300028", state="Paris (75)")
    assert dn_string(name) == WHITELIST_DN
    # The encoded order is C first (RFC 4514 §2.1 prints the last RDN first).
    assert [rdn.rfc4514_string() for rdn in name.rdns] == [
        "C=FR", "ST=Paris (75)", "O=CH XYZ", "OU=318310021300028", "CN=mta.ch-xyz.mssante.fr"]


def test_subject_skips_absent_attributes() -> None:
    name = subject_name(common_name="signer")
    assert dn_string(name) == "CN=signer,C=FR"


def test_person_subject_uses_openssl_short_names() -> None:
    name = subject_name(common_name="Jean Dupont", given_name="Jean", surname="Dupont",
                        serial_number="810102727017")
    assert dn_string(name) == "CN=Jean Dupont,serialNumber=810102727017,GN=Jean,SN=Dupont,C=FR"
    assert name.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "810102727017"


def test_dn_string_escapes_specials_and_round_trips() -> None:
    name = subject_name(common_name="Dupont, Jean + co", organisation='A "quoted" <org>')
    text = dn_string(name)
    assert text.startswith("CN=Dupont\\, Jean \\+ co,")
    assert same_dn(text, 'CN=Dupont\\2C Jean \\+ co,O=A \\"quoted\\" \\<org\\>,C=FR')


@pytest.mark.parametrize("other", [
    WHITELIST_DN,
    "cn=MTA.CH-XYZ.MSSANTE.FR,ou=318310021300028,o=ch xyz,st=PARIS (75),c=fr",
    "CN=mta.ch-xyz.mssante.fr, OU=318310021300028, O=CH  XYZ, ST=Paris (75), C=FR",
    "CN=mta.ch-xyz.mssante.fr;OU=318310021300028;O=CH XYZ;ST=Paris (75);C=FR",
    "2.5.4.3=mta.ch-xyz.mssante.fr,OU=318310021300028,O=CH XYZ,S=Paris (75),C=FR",
    "commonName=mta.ch-xyz.mssante.fr,OU=318310021300028,O=CH\\20XYZ,ST=Paris (75),C=FR",
])
def test_same_dn_normalises_case_whitespace_and_type_names(other: str) -> None:
    assert same_dn(WHITELIST_DN, other)
    assert same_dn(other, WHITELIST_DN)


@pytest.mark.parametrize("other", [
    "C=FR,ST=Paris (75),O=CH XYZ,OU=318310021300028,CN=mta.ch-xyz.mssante.fr",  # order
    "CN=mta.ch-xyz.mssante.fr,OU=318310021300028,O=CH XYZ,C=FR",  # missing ST
    "CN=mta.ch-xyz.mssante.fr,OU=318310021300029,O=CH XYZ,ST=Paris (75),C=FR",  # OU
    "CN=mta.ch-xyz.mssante.fr,OU=318310021300028,O=CHXYZ,ST=Paris (75),C=FR",  # space
    "CN=mta.ch-xyz.mssante.fr\\,OU=318310021300028,O=CH XYZ,ST=Paris (75),C=FR",  # escape
])
def test_same_dn_tells_different_names_apart(other: str) -> None:
    assert not same_dn(WHITELIST_DN, other)


def test_multi_valued_rdn_is_a_set() -> None:
    assert same_dn("CN=a+OU=b,C=FR", "OU=B+cn=A,C=FR")
    assert not same_dn("CN=a+OU=b,C=FR", "CN=a,OU=b,C=FR")


def test_utf8_values_and_hex_escapes_compare_equal() -> None:
    name = subject_name(common_name="Hôpital Saint-Éloi", organisation="CHU")
    assert same_dn(dn_string(name), "CN=H\\C3\\B4pital saint-éloi,O=chu,C=FR")


@pytest.mark.parametrize("bad", [
    "", "   ", "not a dn", "CN=a,,C=FR", "CN=a\\", "CN=a\\zz", "=a,C=FR", "C N=a",
    "CN=#zz", "CN=\\C3,C=FR",
])
def test_unparseable_input_never_matches(bad: str) -> None:
    assert not same_dn(bad, bad)
    assert not same_dn(bad, WHITELIST_DN)


def test_hexstring_values_compare_by_encoding() -> None:
    assert same_dn("CN=#0C0161,C=FR", "cn=#0c0161,c=fr")
    assert not same_dn("CN=#0C0161,C=FR", "CN=#0C0162,C=FR")


def test_dn_string_of_a_parsed_name() -> None:
    name = x509.Name.from_rfc4514_string(WHITELIST_DN)
    assert dn_string(name) == WHITELIST_DN


RFC4514 = "CN=mta.medecin.mssante.fr,OU=690000002,O=CABINET MEDICAL MARTIN,ST=Rhône (69),C=FR"


@pytest.mark.parametrize("pasted", [
    RFC4514,
    "subject=C = FR, ST = Rh\\C3\\B4ne (69), O = CABINET MEDICAL MARTIN, OU = 690000002, "
    "CN = mta.medecin.mssante.fr",  # openssl x509 -noout -subject (its default, oneline)
    "/C=FR/ST=Rh\\xC3\\xB4ne (69)/O=CABINET MEDICAL MARTIN/OU=690000002"
    "/CN=mta.medecin.mssante.fr",  # -nameopt compat
    "CN=mta.medecin.mssante.fr,OU=690000002,O=CABINET MEDICAL MARTIN,ST=Rh\\C3\\B4ne (69),"
    "C=FR",  # -nameopt rfc2253
    "cn=mta.medecin.mssante.fr; ou=690000002; o=CABINET MEDICAL MARTIN; st=Rhône (69); c=FR",
    "CN = mta.medecin.mssante.fr, OU = 690000002, O = CABINET MEDICAL MARTIN, "
    "ST = Rhône (69), C = FR",  # spaced, but CN first: RFC 4514's order
])
def test_parse_dn_gives_the_certificate_s_rfc4514_string(pasted: str) -> None:
    assert parse_dn(pasted) == RFC4514


def test_parse_dn_keeps_quoted_and_escaped_specials() -> None:
    assert parse_dn('C = FR, O = "Clinique, Sud" + OU = 1, CN = mta') == (
        "CN=mta,O=Clinique\\, Sud+OU=1,C=FR")
    assert parse_dn("CN=a\\+b,O=x\\,y,C=FR") == "CN=a\\+b,O=x\\,y,C=FR"


@pytest.mark.parametrize(("bad", "reason"), [
    ("", "empty"), ("mta.medecin.mssante.fr", "no '='"), ("CN=mta,,C=FR", "no '='"),
    ("CN=mta,C=FRA", "length"), ("CN=#0403616263", "hex-encoded"), ("X Y=1", "attribute type"),
    ('C = FR, O = "open, CN = x', "quote"), ("CN=,C=FR", "empty value"), ("CN=a\\q", "escape"),
])
def test_parse_dn_refuses_what_does_not_parse(bad: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_dn(bad)


def test_same_attributes_ignores_the_order_of_rdns() -> None:
    assert same_attributes(RFC4514, "C=FR,ST=Rhône (69),O=CABINET MEDICAL MARTIN,OU=690000002,"
                                    "CN=mta.medecin.mssante.fr")
    assert not same_attributes(RFC4514, "CN=mta.medecin.mssante.fr,C=FR")
