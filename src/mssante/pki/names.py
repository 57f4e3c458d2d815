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
import hashlib
import json
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


def dn_key(text: str) -> str | None:
    """A key equal for two DN strings exactly when ``same_dn`` holds (SHA-256 of the
    normalised DN), for a unique index; None when ``text`` is not a DN. The store keeps
    it beside an APP mailbox's DN: a change of the normalisation needs a migration
    that computes the stored keys again."""
    normalised = _normalise(text)
    if normalised is None:
        return None
    return hashlib.sha256(json.dumps(normalised, ensure_ascii=False,
                                     separators=(",", ":")).encode()).hexdigest()


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
    return " ".join(_unescape(raw).split()).casefold()


def _unescape(raw: str, *, hex_prefix: str = "") -> str:
    """RFC 4514 §2.4 escapes undone: ``\\,`` and the like, and ``\\C3\\B4`` pairs decoded
    as UTF-8 (``hex_prefix="x"`` for OpenSSL's old ``\\xC3\\xB4``)."""
    out = bytearray()
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        start = i + 1 + len(hex_prefix)
        pair = raw[start:start + 2]
        if raw[i + 1:start] == hex_prefix and _HEX_PAIR_RE.fullmatch(pair):
            out.append(int(pair, 16))
            i = start + 2
        elif raw[i + 1:i + 2] and raw[i + 1] in _SPECIALS + "/":
            out += raw[i + 1].encode()
            i += 2
        else:
            raise ValueError(f"bad escape in {raw!r}")
    return out.decode("utf-8")  # UnicodeDecodeError is a ValueError


# -- reading a DN as people paste it ----------------------------------------------------

_SUBJECT_PREFIX = re.compile(r"^\s*(?:subject|issuer)\s*[=:]\s*", re.IGNORECASE)
_ONELINE_RE = re.compile(r"^\s*[A-Za-z][A-Za-z0-9.-]* = ")  # "C = FR, ..." (space_eq)


def parse_dn(text: str) -> str:
    """A DN as a person pastes it, as the RFC 4514 string the whitelist holds (CN first,
    attribute names and escapes as ``dn_string`` prints a certificate's subject).

    Three forms are read, each with its own order of RDNs:

    - RFC 4514 (``CN=mta.x.mssante.fr,OU=…,O=…,C=FR``), as the whitelist, ``openssl
      … -nameopt rfc2253`` and ``mssante pki issue`` print it: first RDN is the CN;
    - OpenSSL's default print (``C = FR, ST = Paris (75), O = …, CN = mta…``, from
      ``openssl x509 -noout -subject``): most significant first (unless the CN comes
      first: then it was typed in RFC 4514's order), values possibly in double quotes,
      multi-valued RDNs joined by `` + ``;
    - OpenSSL's old form (``/C=FR/O=…/CN=…``, ``-nameopt compat``): most significant
      first, ``\\xC3\\xB4`` for UTF-8 octets.

    A leading ``subject=`` (as openssl prints it) is dropped. ValueError says what does
    not parse.
    """
    text = _SUBJECT_PREFIX.sub("", text).strip()
    if not text:
        raise ValueError("empty distinguished name")
    rdns: list[list[tuple[str, str]]]
    if text.startswith("/"):
        rdns = [[_raw_ava(ava, hex_prefix="x") for ava in _split(rdn, "+")]
                for rdn in _split(text[1:], "/")]
        rdns.reverse()
    elif _ONELINE_RE.match(text):
        rdns = [[_raw_ava(ava) for ava in _split_quoted(rdn, "+")]
                for rdn in _split_quoted(text, ",")]
        if not _has_cn(rdns[0]) or _has_cn(rdns[-1]):  # unless typed CN first by hand
            rdns.reverse()
    else:
        rdns = [[_raw_ava(ava) for ava in _split(rdn, "+")] for rdn in _split(text, ",;")]
    try:
        name = x509.Name([x509.RelativeDistinguishedName(
            [x509.NameAttribute(x509.ObjectIdentifier(oid), value) for oid, value in rdn])
            for rdn in reversed(rdns)])  # x509.Name lists the most significant RDN first
    except ValueError as exc:  # e.g. a country that is not two letters
        raise ValueError(f"{exc} in {text!r}") from None
    return dn_string(name)


def same_attributes(a: str, b: str) -> bool:
    """True when two DN strings hold the same attributes, whatever the order of RDNs
    (a DN written most significant first where RFC 4514 wants it last)."""
    left, right = _normalise(a), _normalise(b)
    return left is not None and right is not None and sorted(left) == sorted(right)


def _has_cn(rdn: list[tuple[str, str]]) -> bool:
    return any(oid == NameOID.COMMON_NAME.dotted_string for oid, _ in rdn)


def _split_quoted(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside double quotes and escapes (OpenSSL's print)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    if quoted:
        raise ValueError(f"unterminated quote in {text!r}")
    parts.append("".join(current))
    return parts


def _raw_ava(text: str, *, hex_prefix: str = "") -> tuple[str, str]:
    """``type=value`` as (dotted OID, value as written, unescaped): case kept."""
    name, sep, raw = text.partition("=")
    if not sep:
        raise ValueError(f"no '=' in {text.strip()!r}")
    oid = _attribute_type(name.strip())
    raw = raw.strip(" ")
    if raw.startswith("#"):
        raise ValueError(f"{name.strip()}: hex-encoded values are not accepted; "
                         "write the value as text")
    if len(raw) >= 2 and raw.startswith('"') and raw.endswith('"'):
        raw = raw[1:-1]
    value = _unescape(raw, hex_prefix=hex_prefix)
    if not value:
        raise ValueError(f"{name.strip()}: empty value")
    return oid, value
