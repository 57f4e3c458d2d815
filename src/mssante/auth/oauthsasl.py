"""The SASL messages that carry an OAuth 2.0 bearer token, parsed without I/O, for IMAP
and SMTP submission alike.

- XOAUTH2 (Google's format, https://developers.google.com/gmail/imap/xoauth2-protocol):
  ``user=<login>^Aauth=Bearer <token>^A^A``. ``user`` is required.
- OAUTHBEARER (RFC 7628 §3.1): a GS2 header (RFC 5801 §4) ``n,a=<authzid>,`` (``y``
  too; channel binding ``p=`` is refused, none is offered), then
  ``^Ahost=…^Aport=…^Aauth=Bearer <token>^A^A``. The authzid may be left out: the
  token alone names the person.
- A failure of OAUTHBEARER is told with the JSON error of RFC 7628 §3.2.2, to which
  the client answers with a lone ``^A`` before the final refusal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

XOAUTH2 = "XOAUTH2"
OAUTHBEARER = "OAUTHBEARER"
MECHANISMS = (XOAUTH2, OAUTHBEARER)
KVSEP = b"\x01"
SCOPE = "openid scope_all"  # what a PSC token is asked with

_BEARER = re.compile(r"Bearer +([A-Za-z0-9\-._~+/]+=*)\Z", re.IGNORECASE)  # RFC 6750 §2.1


class MalformedMessage(ValueError):
    """Not a message of the mechanism."""


@dataclass(frozen=True, slots=True)
class BearerResponse:
    login: str  # the user (XOAUTH2) or authzid (OAUTHBEARER); "" when not given
    token: str


def parse(mechanism: str, message: bytes) -> BearerResponse:
    if mechanism == XOAUTH2:
        return parse_xoauth2(message)
    if mechanism == OAUTHBEARER:
        return parse_oauthbearer(message)
    raise MalformedMessage(f"unknown mechanism {mechanism}")


def parse_xoauth2(message: bytes) -> BearerResponse:
    fields = _key_values(message)
    login = fields.get("user", "")
    if not login:
        raise MalformedMessage("XOAUTH2 needs user=")
    return BearerResponse(login, _token(fields))


def parse_oauthbearer(message: bytes) -> BearerResponse:
    header, sep, rest = message.partition(KVSEP)
    if not sep:
        raise MalformedMessage("OAUTHBEARER needs a GS2 header then ^A")
    parts = header.decode("utf-8", "replace").split(",")
    if len(parts) != 3 or parts[2] != "":
        raise MalformedMessage("malformed GS2 header")
    flag, authzid = parts[0], parts[1]
    if flag not in ("n", "y"):  # RFC 5801 §4: "p=" asks for channel binding
        raise MalformedMessage("channel binding is not supported")
    login = ""
    if authzid:
        if not authzid.startswith("a="):
            raise MalformedMessage("malformed authzid")
        login = _saslname(authzid[2:])
    return BearerResponse(login, _token(_key_values(KVSEP + rest)))


def _key_values(message: bytes) -> dict[str, str]:
    """``^A``-separated ``key=value`` pairs ending in ``^A^A`` (the leading ``^A``
    optional)."""
    if not message.endswith(KVSEP + KVSEP):
        raise MalformedMessage("the message must end with ^A^A")
    body = message[:-2].removeprefix(KVSEP)
    out: dict[str, str] = {}
    for pair in body.split(KVSEP):
        key, eq, value = pair.decode("utf-8", "replace").partition("=")
        if not eq or not key:
            raise MalformedMessage("malformed key=value pair")
        if key in out:
            raise MalformedMessage(f"{key} given twice")
        out[key] = value
    return out


def _token(fields: dict[str, str]) -> str:
    found = _BEARER.match(fields.get("auth", ""))
    if found is None:
        raise MalformedMessage("auth=Bearer <token> is missing")
    return found.group(1)


def _saslname(text: str) -> str:
    """RFC 5801 §4: ``=2C`` is a comma and ``=3D`` an equals sign; no other ``=``."""
    if re.search(r"=(?!2C|3D)", text):
        raise MalformedMessage("malformed authzid")
    return text.replace("=2C", ",").replace("=3D", "=")


def error_challenge(configuration_url: str) -> bytes:
    """The JSON error of RFC 7628 §3.2.2 (not yet base64)."""
    return json.dumps({"status": "invalid_token", "scope": SCOPE,
                       "openid-configuration": configuration_url},
                      separators=(",", ":")).encode()
