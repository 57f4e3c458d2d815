from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.operator.accept import RcptParams
from mssante.smtp.params import (
    parse_mail_params,
    parse_rcpt_params,
    rcpt_params_wire,
    xtext_decode,
    xtext_encode,
)
from mssante.smtp.replies import SMTPReply


def test_mail_params() -> None:
    p = parse_mail_params("SIZE=1000 BODY=8bitmime RET=hdrs ENVID=QQ+2Bx SMTPUTF8")
    assert (p.size, p.body, p.ret, p.envid, p.smtputf8) == (1000, "8BITMIME", "HDRS", "QQ+x", True)
    assert parse_mail_params("").size is None


@pytest.mark.parametrize("text,code", [
    ("ENVID=a+7Fb", 501),
    ("SIZE=abc", 501), ("BODY=BINARYMIME", 501), ("RET=ALL", 501), ("ENVID=a+zz", 501),
    ("XFOO=1", 555), ("SIZE=1 SIZE=2", 501), ("ENVID=" + "a" * 101, 501), ("SMTPUTF8=1", 501),
])
def test_bad_mail_params(text: str, code: int) -> None:
    with pytest.raises(SMTPReply) as info:
        parse_mail_params(text)
    assert info.value.reply.code == code


def test_rcpt_params_keep_case_and_round_trip() -> None:
    p = parse_rcpt_params("NOTIFY=success,Delay ORCPT=rfc822;Dupont+2BX@CH-XYZ.mssante.fr")
    assert p.notify == {"SUCCESS", "DELAY"}
    assert p.orcpt == "rfc822;Dupont+X@CH-XYZ.mssante.fr"
    assert rcpt_params_wire(p) == ["NOTIFY=SUCCESS,DELAY",
                                   "ORCPT=rfc822;Dupont+2BX@CH-XYZ.mssante.fr"]
    assert rcpt_params_wire(RcptParams()) == []


@pytest.mark.parametrize("text", ["NOTIFY=NEVER,SUCCESS", "NOTIFY=", "NOTIFY=SOMETIMES",
                                  "ORCPT=rfc822", "ORCPT=;x", "FOO=BAR"])
def test_bad_rcpt_params(text: str) -> None:
    with pytest.raises(SMTPReply):
        parse_rcpt_params(text)


def test_control_characters_cannot_be_smuggled_into_dsns() -> None:
    # a CR LF in ENVID or ORCPT would become a header line of the DSN (RFC 3461 §4.4)
    with pytest.raises(SMTPReply, match="printable ASCII"):
        parse_mail_params("ENVID=a+0D+0AX-Injected:+20yes")
    with pytest.raises(SMTPReply, match="control character"):
        parse_rcpt_params("ORCPT=rfc822;a+0D+0AX-Injected:+20yes@x.fr")


@given(st.text(max_size=60))
def test_xtext_round_trip(text: str) -> None:
    encoded = xtext_encode(text)
    assert all("!" <= c <= "~" and c != "=" for c in encoded)
    assert xtext_decode(encoded) == text
