"""Distinguished names: building subjects, printing and comparing DN strings.

The whitelist binds each domain to the DN of an operator certificate, written
RFC 4514 style with the CN first (``CN=mta.ch-xyz.mssante.fr,OU=…,O=…,ST=…,C=FR``).
Subjects are therefore built in the order C, ST, O, OU, …, CN: RFC 4514 §2.1
prints the last RDN first.

Comparison (``same_dn``) parses both strings with a small RFC 4514 parser that is
lenient where people are (spaces after commas, ``;`` as separator, attribute type
names in any case, OpenSSL short names such as ``GN``) and strict where meaning is
at stake (order of RDNs, escapes).
"""

from __future__ import annotations

import functools
import re

from cryptography import x509
from cryptography.x509.oid import NameOID

# Names printed for attributes RFC 4514 §3 does not name; the OpenSSL short names,
# so that a DN reads the same here and in `openssl x509 -subject -nameopt rfc2253`.
_PRINT_NAMES: dict[x509.ObjectIdentifier, str] = {
    NameOID.GIVEN_NAME: "GN",
    NameOID.SURNAME: "SN",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.TITLE: "title",
}

# Attribute type names accepted when parsing (lower case) -> dotted OID.
_TYPE_NAMES: dict[str, str] = {
    "cn": NameOID.COMMON_NAME.dotted_string,
    "commonname": NameOID.COMMON_NAME.dotted_string,
    "c": NameOID.COUNTRY_NAME.dotted_string,
    "countryname": NameOID.COUNTRY_NAME.dotted_string,
    "st": NameOID.STATE_OR_PROVINCE_NAME.dotted_string,
    "s": NameOID.STATE_OR_PROVINCE_NAME.dotted_string,
    "stateorprovincename": NameOID.STATE_OR_PROVINCE_NAME.dotted_string,
    "l": NameOID.LOCALITY_NAME.dotted_string,
    "localityname": NameOID.LOCALITY_NAME.dotted_string,
    "o": NameOID.ORGANIZATION_NAME.dotted_string,
    "organizationname": NameOID.ORGANIZATION_NAME.dotted_string,
    "ou": NameOID.ORGANIZATIONAL_UNIT_NAME.dotted_string,
    "organizationalunitname": NameOID.ORGANIZATIONAL_UNIT_NAME.dotted_string,
    "street": NameOID.STREET_ADDRESS.dotted_string,
    "streetaddress": NameOID.STREET_ADDRESS.dotted_string,
    "dc": NameOID.DOMAIN_COMPONENT.dotted_string,
    "domaincomponent": NameOID.DOMAIN_COMPONENT.dotted_string,
    "uid": NameOID.USER_ID.dotted_string,
    "userid": NameOID.USER_ID.dotted_string,
    "gn": NameOID.GIVEN_NAME.dotted_string,
    "givenname": NameOID.GIVEN_NAME.dotted_string,
    "sn": NameOID.SURNAME.dotted_string,
    "surname": NameOID.SURNAME.dotted_string,
    "serialnumber": NameOID.SERIAL_NUMBER.dotted_string,
    "emailaddress": NameOID.EMAIL_ADDRESS.dotted_string,
    "email": NameOID.EMAIL_ADDRESS.dotted_string,
    "e": NameOID.EMAIL_ADDRESS.dotted_string,
    "t": NameOID.TITLE.dotted_string,
    "title": NameOID.TITLE.dotted_string,
}

_DESCR_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")  # RFC 4512 §1.4 descr
_OID_RE = re.compile(r"^(?:oid\.)?([0-9]+(?:\.[0-9]+)+)$", re.IGNORECASE)  # numericoid
_HEX_PAIR_RE = re.compile(r"[0-9A-Fa-f]{2}")
_HEXSTRING_RE = re.compile(r"#(?:[0-9A-Fa-f]{2})+")
_SPECIALS = ' "#+,;<=>\\'  # RFC 4514 §2.4 characters that may follow a backslash


def subject_name(*, common_name: str, organisation: str | None = None,
                 organisation_unit: str | None = None, state: str | None = None,
                 country: str = "FR", given_name: str | None = None,
                 surname: str | None = None, serial_number: str | None = None) -> x509.Name:
    """A subject built C, ST, O, OU, SN, GN, serialNumber, CN (so it prints CN first)."""
    attributes: list[tuple[x509.ObjectIdentifier, str | None]] = [
        (NameOID.COUNTRY_NAME, country),
        (NameOID.STATE_OR_PROVINCE_NAME, state),
        (NameOID.ORGANIZATION_NAME, organisation),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, organisation_unit),
        (NameOID.SURNAME, surname),
        (NameOID.GIVEN_NAME, given_name),
        (NameOID.SERIAL_NUMBER, serial_number),
        (NameOID.COMMON_NAME, common_name),
    ]
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes if value])


def dn_string(name: x509.Name) -> str:
    """The RFC 4514 string of a name, e.g. ``CN=mta.ch-xyz.mssante.fr,O=CH XYZ,C=FR``."""
    return name.rfc4514_string(_PRINT_NAMES)


def same_dn(a: str, b: str) -> bool:
    """True when two DN strings name the same entity; unparseable or empty input: False."""
    left, right = _normalise(a), _normalise(b)
    return left is not None and left == right


_Normalised = tuple[tuple[tuple[str, str], ...], ...]


@functools.lru_cache(maxsize=4096)  # the same few DNs are compared on every delivery
def _normalise(text: str) -> _Normalised | None:
    try:
        rdns = _parse(text)
    except ValueError:
        return None
    return rdns or None


def _parse(text: str) -> _Normalised:
    """RFC 4514 §3 parser; each RDN's attributes are sorted (a multi-valued RDN is a set)."""
    if not text.strip():
        return ()
    rdns: list[tuple[tuple[str, str], ...]] = []
    for rdn in _split(text, ",;"):
        avas = [_parse_ava(ava) for ava in _split(rdn, "+")]
        rdns.append(tuple(sorted(avas)))
    return tuple(rdns)


def _split(text: str, separators: str) -> list[str]:
    """Split on unescaped separators, keeping escapes in place for the next stage."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text):
                raise ValueError("dangling backslash")
            current.append(text[i:i + 2])
            i += 2
            continue
        if ch in separators:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _parse_ava(text: str) -> tuple[str, str]:
    name, sep, raw_value = text.partition("=")
    if not sep:
        raise ValueError(f"no '=' in {text!r}")
    return _attribute_type(name.strip()), _value(raw_value)


def _attribute_type(name: str) -> str:
    oid = _OID_RE.match(name)
    if oid:
        return oid.group(1)
    if not _DESCR_RE.match(name):
        raise ValueError(f"bad attribute type {name!r}")
    return _TYPE_NAMES.get(name.lower(), name.lower())


def _value(raw: str) -> str:
    """Unescape (RFC 4514 §2.4), then fold case and collapse whitespace."""
    raw = raw.strip(" ")
    if raw.startswith("#"):  # RFC 4514 §2.4 hexstring: compare the encoding itself
        if not _HEXSTRING_RE.fullmatch(raw):
            raise ValueError(f"bad hexstring {raw!r}")
        return raw.lower()
    out = bytearray()
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        pair = raw[i + 1:i + 3]
        if _HEX_PAIR_RE.fullmatch(pair):
            out.append(int(pair, 16))
            i += 3
        elif raw[i + 1:i + 2] and raw[i + 1] in _SPECIALS:
            out += raw[i + 1].encode()
            i += 2
        else:
            raise ValueError(f"bad escape in {raw!r}")
    value = out.decode("utf-8")  # UnicodeDecodeError is a ValueError
    return " ".join(value.split()).casefold()
