"""Writing message disposition notifications (RFC 8098): the one builder of the project,
for the read receipts of the webmail (``read_receipt``) and the integration receipts of
an APP mailbox's program (content/integration.py). Pure: values in, a message out.

An MDN (RFC 8098 §3) is an RFC 6522 ``multipart/report; report-type=
disposition-notification`` of three parts: a human-readable one (any type, RFC 6522 §3:
text, or a ``multipart/mixed`` of the text and files), ``message/disposition-
notification`` (``Reporting-UA``, ``Final-Recipient``, ``Original-Message-ID``,
``Disposition``, and ``Error`` when there is one, RFC 8098 §3.2), then the original's
header section (``text/rfc822-headers``). It goes to the Disposition-Notification-To
address, from the mailbox that reports (``From`` and ``Final-Recipient``).

Deliberate deviation: RFC 8098 §3 wants the MDN's envelope sender null (``<>``); here it
is sent through the operator's submission path, which takes no null sender (the sender
is a mailbox the identity may use), so its envelope sender is the reporting mailbox,
and no delivery status notification is asked for it.
"""

from __future__ import annotations

import email.policy
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

from mssante.content.headers import rfc5322_date

MDN_SENT = "$MDNSent"  # RFC 3503 §3.1: the MDN was sent, or the person chose not to
MANUAL = "manual-action/MDN-sent-manually"  # RFC 8098 §3.2.6.1: the person asked for it
AUTOMATIC = "automatic-action/MDN-sent-automatically"  # sent without the person's action
DISPLAYED = "displayed"  # RFC 8098 §3.2.6.2
PROCESSED = "processed"
READ_UA = "mssante-webmail; mssante webmail"  # Reporting-UA of a read receipt (§3.2.1)


@dataclass(frozen=True, slots=True)
class Original:
    """What an MDN names of the message it reports on."""

    message_id: str | None  # its <id>, None without one
    subject: str
    header_section: bytes  # its header section, for the third part


@dataclass(frozen=True, slots=True)
class File:
    """A file the human-readable part carries (a KO integration sends documents back)."""

    filename: str
    maintype: str
    subtype: str
    data: bytes = field(repr=False)


def build_mdn(original: Original, *, mailbox: str, to: str, disposition: str, subject: str,
              text: str, reporting_ua: str, error: str | None = None,
              files: Sequence[File] = (), automatic: bool = True,
              now: float | None = None) -> EmailMessage:
    """The MDN ``mailbox`` sends to ``to`` about ``original``: ``disposition`` is the
    ``Disposition`` field's value (``<action-mode>/<sending-mode>; <type>[/<modifier>]``,
    RFC 8098 §3.2.6), ``error`` the ``Error`` field's (§3.2.7), ``automatic`` whether no
    person decided to send it (then ``Auto-Submitted: auto-replied``, RFC 3834 §5)."""
    mdn = EmailMessage(policy=email.policy.SMTP)
    mdn["From"] = mailbox
    mdn["To"] = to
    mdn["Date"] = rfc5322_date(now)
    mdn["Message-ID"] = email.utils.make_msgid(domain=mailbox.rpartition("@")[2])
    mdn["Subject"] = subject
    if original.message_id:
        mdn["In-Reply-To"] = original.message_id
        mdn["References"] = original.message_id
    if automatic:
        mdn["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5: no automatic answer to it
    human = EmailMessage(policy=email.policy.SMTP)
    human.set_content(text, subtype="plain", charset="utf-8")
    for item in files:
        human.add_attachment(item.data, maintype=item.maintype, subtype=item.subtype,
                             filename=item.filename)
    fields = [f"Reporting-UA: {reporting_ua}", f"Final-Recipient: rfc822;{mailbox}"]
    if original.message_id:
        fields.append(f"Original-Message-ID: {original.message_id}")
    fields.append(f"Disposition: {disposition}")
    if error is not None:
        fields.append(f"Error: {error}")
    report = EmailMessage(policy=email.policy.SMTP)
    report["Content-Type"] = "message/disposition-notification"
    report.set_payload("\r\n".join(fields) + "\r\n")
    headers = EmailMessage(policy=email.policy.SMTP)
    headers["Content-Type"] = "text/rfc822-headers"
    # 8-bit octets of a hostile or SMTPUTF8 header section become "?": the part is ASCII
    headers.set_payload(original.header_section.decode("ascii", "replace")
                        .replace("\ufffd", "?"))
    mdn.set_type("multipart/report")
    mdn.set_param("report-type", "disposition-notification")
    for part in (human, report, headers):
        mdn.attach(part)
    return mdn


def read_receipt(original: Original, *, mailbox: str, to: str, automatic: bool,
                 now: float | None = None) -> EmailMessage:
    """The read receipt of ``mailbox`` for ``original``: ``displayed``, sent manually
    (the person pressed the button) or automatically (a patient's, who cannot refuse
    it). RFC 8098 §3.2.6.2: displayed says the message was shown, not that it was
    read or understood; the text says so."""
    subject = " ".join(original.subject.split())[:200] or "(sans objet)"
    mode = AUTOMATIC if automatic else MANUAL
    text = (f"Le message « {subject} » envoyé à {mailbox} a été affiché le "
            f"{rfc5322_date(now)}.\n"
            "Cet accusé dit que le message a été affiché ; il ne garantit pas qu'il a été "
            "lu ni compris.\n"
            f"Message : {original.message_id or '(sans identifiant)'}\n")
    return build_mdn(original, mailbox=mailbox, to=to, disposition=f"{mode}; {DISPLAYED}",
                     subject=f"Accusé de lecture : {subject}", text=text,
                     reporting_ua=READ_UA, automatic=automatic, now=now)
