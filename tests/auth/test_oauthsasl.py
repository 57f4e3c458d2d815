"""The SASL messages that carry a bearer token (auth/oauthsasl.py), from byte literals."""

from __future__ import annotations

import json

import pytest

from mssante.auth.oauthsasl import (
    BearerResponse,
    MalformedMessage,
    error_challenge,
    parse,
    parse_oauthbearer,
    parse_xoauth2,
)


def test_xoauth2_gives_the_user_and_the_token() -> None:
    assert parse_xoauth2(b"user=dupont@ch-xyz.mssante.fr\x01auth=Bearer eyJ.a-b_c.d~e\x01\x01") \
        == BearerResponse("dupont@ch-xyz.mssante.fr", "eyJ.a-b_c.d~e")
    assert parse("XOAUTH2", b"user=u\x01auth=bearer t\x01\x01").token == "t"


@pytest.mark.parametrize("message", [
    b"auth=Bearer t\x01\x01",  # no user
    b"user=u\x01auth=Bearer t\x01",  # not ended by ^A^A
    b"user=u\x01auth=Basic dTpw\x01\x01",  # not a bearer token
    b"user=u\x01auth=Bearer \x01\x01",  # an empty token
    b"user=u\x01auth=Bearer t t\x01\x01",  # not a b64token (RFC 6750 §2.1)
    b"user=u\x01user=v\x01auth=Bearer t\x01\x01",  # user twice
    b"user=u\x01garbage\x01auth=Bearer t\x01\x01",
])
def test_malformed_xoauth2_is_refused(message: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_xoauth2(message)


def test_oauthbearer_gives_the_authzid_and_the_token() -> None:
    message = b"n,a=dupont@ch-xyz.mssante.fr,\x01host=imap.ch-xyz\x01port=993\x01" \
              b"auth=Bearer tok\x01\x01"
    assert parse_oauthbearer(message) == BearerResponse("dupont@ch-xyz.mssante.fr", "tok")
    # RFC 5801 §4: the authzid escapes , and =; it may be left out (RFC 7628 §3.1)
    assert parse_oauthbearer(b"y,a=a=2Cb=3Dc,\x01auth=Bearer t\x01\x01").login == "a,b=c"
    assert parse_oauthbearer(b"n,,\x01auth=Bearer t\x01\x01") == BearerResponse("", "t")


@pytest.mark.parametrize("message", [
    b"p=tls-unique,a=u,\x01auth=Bearer t\x01\x01",  # channel binding is not offered
    b"n,a=u\x01auth=Bearer t\x01\x01",  # GS2 header not ended by a comma
    b"n,u,\x01auth=Bearer t\x01\x01",  # not a=
    b"n,a=u=2D,\x01auth=Bearer t\x01\x01",  # a stray = in the saslname
    b"n,a=u,\x01host=h\x01\x01",  # no token
    b"n,a=u,auth=Bearer t",  # no ^A at all
    b"\x01",  # the dummy response is no message
])
def test_malformed_oauthbearer_is_refused(message: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_oauthbearer(message)


def test_the_error_challenge_is_rfc7628_json() -> None:
    url = "https://127.0.0.1:8443/psc/.well-known/openid-configuration"
    assert json.loads(error_challenge(url)) == {
        "status": "invalid_token", "scope": "openid scope_all", "openid-configuration": url}
