"""A message's timeline at the sender's operator (`mssante operator track`): Dr Dupont
sends to Dr Martin, at another operator, asking for a delivery report and a read
receipt; Martin's operator stores it and reports delivery (DSN), Martin's client sends
the read receipt (MDN); the timeline shows each step per recipient, and a forged
receipt from someone else changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from email.message import EmailMessage
from email.utils import make_msgid

from tests.conftest import RunningEnvironment
from tests.e2e.mail import message, send, submission, unique

DUPONT = "dupont@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
HOSPITAL = "ch-xyz.mssante.fr"


def mdn(sender: str, to: str, original_id: str, *, final_recipient: str) -> EmailMessage:
    """A read receipt as a mail client writes it (RFC 8098 §3)."""
    receipt = EmailMessage()
    receipt["From"] = sender
    receipt["To"] = to
    receipt["Subject"] = "Accusé de lecture"
    receipt["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    receipt.set_content("Votre message a été lu.\n")
    receipt.make_mixed()
    report = EmailMessage()
    report.set_payload(
        "Reporting-UA: client.test; mail client\r\n"
        f"Final-Recipient: rfc822;{final_recipient}\r\n"
        f"Original-Message-ID: {original_id}\r\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\r\n")
    report["Content-Type"] = "message/disposition-notification"
    receipt.attach(report)
    receipt.replace_header("Content-Type",
                           'multipart/report; report-type=disposition-notification; '
                           f'boundary="{receipt.get_boundary()}"')
    return receipt


def track(env: RunningEnvironment, message_id: str, *args: str
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mssante", "operator", "track", message_id, "--config",
         env.operator(HOSPITAL)["config"], *args],
        capture_output=True, text=True, timeout=60, check=False)


def test_submitted_relayed_delivered_and_read_and_forged_receipts_count_for_nothing(
        environment: RunningEnvironment) -> None:
    subject = unique("Compte rendu")
    original = message(DUPONT, MARTIN, subject, Disposition_Notification_To=DUPONT)
    with submission(environment, HOSPITAL, DUPONT) as smtp:
        smtp.send_message(original, rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
    environment.wait_message(MARTIN, subject)
    # forged receipts: from Dupont's own operator claiming Martin read it, and from
    # Martin's operator for someone who was not a recipient
    send(environment, DUPONT, mdn(DUPONT, DUPONT, original["Message-ID"],
                                  final_recipient=MARTIN))
    send(environment, MARTIN, mdn(MARTIN, DUPONT, original["Message-ID"],
                                  final_recipient="intruder@medecin.mssante.fr"))
    environment.wait_message(DUPONT, "Accusé de lecture")
    assert json.loads(track(environment, original["Message-ID"], "--json").stdout)[
        "recipients"][MARTIN] != "read"
    send(environment, MARTIN, mdn(MARTIN, DUPONT, original["Message-ID"],
                                  final_recipient=MARTIN))

    def read_reported() -> bool:
        result = track(environment, original["Message-ID"], "--json")
        return result.returncode == 0 and \
            json.loads(result.stdout)["recipients"].get(MARTIN) == "read"

    environment.wait_for(read_reported, timeout=30)
    result = track(environment, original["Message-ID"].strip("<>"), "--json")
    timeline = json.loads(result.stdout)
    assert (timeline["sender"], timeline["subject"]) == (DUPONT, subject)
    events = [(e["event"], e["recipient"]) for e in timeline["events"]]
    assert events[:3] == [("submitted", ""), ("queued", MARTIN), ("relayed", MARTIN)]
    assert ("delivered", MARTIN) in events  # Martin's operator's DSN (NOTIFY=SUCCESS)
    assert events[-1] == ("read", MARTIN)
    assert not any(r == "intruder@medecin.mssante.fr" for _, r in events)
    relayed = next(e for e in timeline["events"] if e["event"] == "relayed")
    assert "medecin.mssante.fr" in relayed["detail"]
    assert timeline["recipients"] == {MARTIN: "read"}
    # the table for people
    shown = track(environment, original["Message-ID"])
    assert shown.returncode == 0 and "relayed" in shown.stdout and "read" in shown.stdout


def test_a_message_this_operator_did_not_send_is_named_in_the_error(
        environment: RunningEnvironment) -> None:
    result = track(environment, "<never-sent@ch-xyz.mssante.fr>", "--json")
    assert result.returncode == 1
    assert "no mailbox of this operator sent <never-sent@ch-xyz.mssante.fr>" in result.stderr
    bad = track(environment, "two words", "--json")
    assert bad.returncode == 1 and "not a Message-ID" in bad.stderr
