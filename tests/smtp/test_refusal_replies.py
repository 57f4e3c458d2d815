"""Each refusal of the acceptance path (operator/refusals.py) has its SMTP reply."""

from __future__ import annotations

from mssante.operator import refusals
from mssante.smtp.replies import (
    BAD_ADDRESS_SYNTAX,
    MAILBOX_DISABLED,
    RECIPIENT_NOT_IN_TRUST_SPACE,
    REFUSALS,
    TOO_MANY_RECIPIENTS,
    refusal_reply,
)


def test_every_refusal_has_a_reply_of_its_own() -> None:
    base = refusals.Refused
    kinds = {k for k in vars(refusals).values()
             if isinstance(k, type) and issubclass(k, base) and k is not base}
    assert kinds == set(REFUSALS)


def test_the_reply_carries_the_reason() -> None:
    outside = refusals.OutsideTrustSpace("x@gmail.com is outside the MSSanté trust space",
                                         address="x@gmail.com")
    assert refusal_reply(outside) == RECIPIENT_NOT_IN_TRUST_SPACE.with_text(
        "x@gmail.com is outside the MSSanté trust space")
    assert str(refusal_reply(refusals.ClosedMailbox("Mailbox closed: a@b.fr"))) == \
        f"{MAILBOX_DISABLED.code} {MAILBOX_DISABLED.status} Mailbox closed: a@b.fr"
    assert refusal_reply(refusals.BadAddress("no @")).status == BAD_ADDRESS_SYNTAX.status
    assert refusal_reply(refusals.TooManyRecipients("Too many recipients")) == \
        TOO_MANY_RECIPIENTS  # 452: the client sends the rest in another transaction


def test_a_refusal_of_no_known_kind_is_refused_as_not_authorised() -> None:
    reply = refusal_reply(refusals.Refused("because"))
    assert (reply.code, reply.status, reply.text) == (550, "5.7.1", "because")
