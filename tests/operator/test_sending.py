"""The sending path of an authenticated identity (operator/sending.py), used directly as
the webmail uses it, without SMTP, on the running local environment: what it stores
and queues, and each refusal with its reason."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from mssante.auth.identity import Identity
from mssante.domain.mailboxes import PersonKind
from mssante.operator import sending
from mssante.operator.accept import MAX_RECIPIENTS, RcptParams
from mssante.operator.refusals import (
    BadAddress,
    ClosedMailbox,
    HeadersRefused,
    MessageTooBig,
    OutsideTrustSpace,
    PatientRule,
    Refused,
    SenderNotAllowed,
    TooManyRecipients,
    UnknownMailbox,
)
from mssante.operator.runtime import OperatorRuntime
from tests.conftest import RunningEnvironment
from tests.imap.conftest import HOSPITAL, Account, fresh_org, fresh_person, grant, revoke

T = TypeVar("T")
PRACTICE = "medecin.mssante.fr"
PATIENT = "279035121518989@patient.mssante.fr"  # the demo patient
WEB = sending.Client("HTTPS", "192.0.2.7")


def run(env: RunningEnvironment, coro: Coroutine[Any, Any, T]) -> T:
    """Run on the environment's loop, where its stores live."""
    return env.runner.call(coro)


def runtime(env: RunningEnvironment, domain: str = HOSPITAL) -> OperatorRuntime:
    ctx = env.service(domain).runtime
    assert isinstance(ctx, OperatorRuntime)
    return ctx


def professional(account: Account) -> Identity:
    return Identity(account.login, PersonKind.HEALTH.value)


def text(sender: str, to: str, subject: str, **headers: str) -> bytes:
    """A message as a web form makes it: bare LF line endings, no Date, no Message-ID."""
    fields = {"From": sender, "To": to, "Subject": subject, **headers}
    head = "".join(f"{name}: {value}\n" for name, value in fields.items())
    return f"{head}\nBonjour,\n".encode()


def to(*addresses: str) -> list[tuple[str, RcptParams]]:
    return [(a, RcptParams()) for a in addresses]


def submit(env: RunningEnvironment, who: Identity, sender: str, recipients: list[str],
           body: bytes, domain: str = HOSPITAL) -> str:
    message = sending.Submission(sender, to(*recipients), body)
    return run(env, sending.submit(runtime(env, domain), who, message, WEB))


def refusal(env: RunningEnvironment, kind: type[Refused], coro: Coroutine[Any, Any, Any]
            ) -> Refused:
    with pytest.raises(kind) as caught:
        run(env, coro)
    return caught.value


def test_a_message_lands_in_the_inbox_and_in_sent_and_is_queued_for_a_remote_recipient(
        environment: RunningEnvironment, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mssante.mail")
    author, colleague = fresh_person(environment), fresh_person(environment)
    remote = fresh_person(environment, domain=PRACTICE)
    subject = f"web {uuid.uuid4().hex[:8]}"
    queue_id = submit(environment, professional(author), author.address,
                      [colleague.address, remote.address],
                      text(author.address, f"{colleague.address}, {remote.address}", subject))

    inbox = environment.wait_message(colleague.address, subject)
    store = runtime(environment).store
    sent = [m for m in run(environment, store.list_messages(author.address, "Sent"))
            if m.subject == subject]
    assert len(sent) == 1 and "\\Seen" in sent[0].flags
    assert sent[0].body_sha256 == inbox.body_sha256  # one message, stored once
    body = run(environment, store.get_body(inbox.body_sha256))
    head = body.split(b"\r\n\r\n", 1)[0]
    assert b"\n" not in head.replace(b"\r\n", b"")  # made CRLF
    assert head.startswith(b"Received: from unknown (192.0.2.7)")
    assert f"with HTTPS id {queue_id}".encode() in head
    assert inbox.date_header and inbox.message_id  # added, as submission adds them
    assert inbox.message_id.endswith(f"@{HOSPITAL}>")

    environment.wait_message(remote.address, subject)  # queued, then relayed by the MTA
    logged = [r.getMessage() for r in caplog.records if r.name == "mssante.mail"
              and r.getMessage().startswith(f"{queue_id}: ")]
    added = sum(len(line) + 2 for line in head.split(b"\r\n")
                if line.startswith((b"Date: ", b"Message-ID: ")))
    handed_in = len(body) - added  # as submission logs it: with Received, before additions
    assert logged == [f"{queue_id}: from=<{author.address}>, to=<{colleague.address}>,"
                      f"<{remote.address}>, size={handed_in}, client=192.0.2.7, "
                      f"sasl_username={author.login}, proto=HTTPS, status=accepted"]


def test_a_message_without_from_gets_the_sender(environment: RunningEnvironment) -> None:
    author, colleague = fresh_person(environment), fresh_person(environment)
    subject = f"no from {uuid.uuid4().hex[:8]}"
    body = f"To: {colleague.address}\nSubject: {subject}\n\nBonjour,\n".encode()
    submit(environment, professional(author), author.address, [colleague.address], body)
    stored = environment.wait_message(colleague.address, subject)
    assert stored.from_header == author.address
    body = run(environment, runtime(environment).store.get_body(stored.body_sha256))
    assert body.count(b"\r\nFrom: ") == 1 and f"\r\nFrom: <{author.address}>\r\n".encode() in body


def test_the_mailboxes_one_may_send_as_follow_grants(environment: RunningEnvironment) -> None:
    responsible, delegate = fresh_person(environment), fresh_person(environment)
    org = fresh_org(environment, responsible)
    ctx = runtime(environment)

    def usable(who: Account) -> frozenset[str]:
        return run(environment, sending.usable_senders(ctx, professional(who)))

    assert usable(responsible) == {responsible.address, org}
    assert usable(delegate) == {delegate.address}
    grant(environment, org, delegate, "r")
    assert usable(delegate) == {delegate.address}  # reading is not writing
    grant(environment, org, delegate, "rw")
    assert usable(delegate) == {delegate.address, org}
    sender = run(environment, sending.check_sender(ctx, professional(delegate), org))
    assert sender.key == org
    revoke(environment, org, delegate)
    # checked again with the message: revoked between the two, refused
    message = sending.Submission(org, to(responsible.address),
                                 text(org, responsible.address, "revoked"))
    exc = refusal(environment, SenderNotAllowed,
                  sending.submit(ctx, professional(delegate), message, WEB))
    assert str(exc) == f"{delegate.login} is not allowed to send as {org}"
    assert exc.address == org


def test_sender_refusals(environment: RunningEnvironment) -> None:
    author, other = fresh_person(environment), fresh_person(environment)
    ctx, who = runtime(environment), professional(author)
    exc = refusal(environment, SenderNotAllowed, sending.check_sender(ctx, who, other.address))
    assert str(exc) == f"{author.login} is not allowed to send as {other.address}"
    exc = refusal(environment, SenderNotAllowed, sending.check_sender(ctx, who, ""))
    assert str(exc) == "The null sender is not allowed here"
    exc = refusal(environment, BadAddress, sending.check_sender(ctx, who, "not an address"))
    assert exc.address == "not an address" and str(exc)
    # the From and Sender fields are checked as the envelope sender is
    for field in ("From", "Sender"):
        body = text(author.address, other.address, "spoof", **{field: other.address})
        message = sending.Submission(author.address, to(other.address), body)
        exc = refusal(environment, SenderNotAllowed, sending.submit(ctx, who, message, WEB))
        assert str(exc) == (f"{field} header: {author.login} is not allowed to send as "
                            f"{other.address}")
        assert exc.address == other.address
    assert [m for m in environment.messages(other.address) if m.subject == "spoof"] == []


def test_recipient_refusals_name_the_address(environment: RunningEnvironment) -> None:
    author, closed = fresh_person(environment), fresh_person(environment)
    ctx, who = runtime(environment), professional(author)
    run(environment, ctx.store.set_mailbox_active(closed.address, False))

    def check(address: str, accepted: int = 0) -> Coroutine[Any, Any, Any]:
        return sending.check_recipient(ctx, who, author.address, address, accepted=accepted)

    exc = refusal(environment, OutsideTrustSpace, check("x@gmail.com"))
    assert str(exc).startswith("x@gmail.com is outside the MSSanté trust space: its domain "
                               "gmail.com is not on the MSSanté whitelist")
    assert exc.address == "x@gmail.com"
    unknown = f"nobody-{uuid.uuid4().hex[:6]}@{HOSPITAL}"
    exc = refusal(environment, UnknownMailbox, check(unknown))
    assert (str(exc), exc.address) == (f"No such mailbox: {unknown}", unknown)
    exc = refusal(environment, ClosedMailbox, check(closed.address))
    assert (str(exc), exc.address) == (f"Mailbox closed: {closed.address}", closed.address)
    exc = refusal(environment, UnknownMailbox, check("123@patient.mssante.fr"))
    assert str(exc).startswith("123@patient.mssante.fr is not a patient address")
    exc = refusal(environment, BadAddress, check("two@@ats"))
    assert exc.address == "two@@ats"
    exc = refusal(environment, TooManyRecipients, check(author.address, MAX_RECIPIENTS))
    assert str(exc) == "Too many recipients"
    # submit checks every recipient before it stores anything
    body = text(author.address, "x@gmail.com", "partly outside")
    message = sending.Submission(author.address, to(closed.address, "x@gmail.com"), body)
    refusal(environment, ClosedMailbox, sending.submit(ctx, who, message, WEB))
    assert run(environment, ctx.store.list_messages(author.address, "Sent")) == []


def test_message_refusals(environment: RunningEnvironment) -> None:
    author, colleague = fresh_person(environment), fresh_person(environment)
    ctx, who = runtime(environment), professional(author)

    def submitted(body: bytes, recipients: list[str] | None = None) -> Coroutine[Any, Any, str]:
        rcpts = [colleague.address] if recipients is None else recipients
        return sending.submit(ctx, who, sending.Submission(author.address, to(*rcpts), body),
                              WEB)

    exc = refusal(environment, HeadersRefused, submitted(b" folded: first\n\nx\n"))
    assert str(exc) == "Message headers refused: the message begins with a continuation line"
    two = f"From: {author.address}\nFrom: {author.address}\n\nx\n".encode()
    exc = refusal(environment, HeadersRefused, submitted(two))
    assert str(exc).startswith("Message headers refused: ")
    big = b"x" * (ctx.settings.max_message_size + 1)
    exc = refusal(environment, MessageTooBig, submitted(big))
    assert str(exc) == f"Message exceeds the limit of {ctx.settings.max_message_size} bytes"
    refusal(environment, BadAddress, submitted(text(author.address, "", "nobody"), []))
    assert environment.messages(colleague.address) == []


def test_a_patient_may_not_start_a_conversation(environment: RunningEnvironment) -> None:
    doctor = fresh_person(environment)
    ctx = runtime(environment, "patient.mssante.fr")
    patient = Identity(PATIENT, PersonKind.PATIENT.value)
    exc = refusal(environment, PatientRule,
                  sending.check_recipient(ctx, patient, PATIENT, doctor.address))
    assert str(exc).startswith(f"{doctor.address}: ")
    assert exc.address == doctor.address
    # nor by handing the whole message in at once
    message = sending.Submission(PATIENT, to(doctor.address),
                                 text(PATIENT, doctor.address, "bonjour docteur"))
    refusal(environment, PatientRule, sending.submit(ctx, patient, message, WEB))
    assert environment.messages(doctor.address) == []
