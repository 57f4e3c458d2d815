"""`mssante operator track` on integration receipts (typer's runner, a real store): the
ANS KO receipt (``processed/Error: <code>^<label>``, codes 900–906) is an integration
failure with its code and label, not ``processed``; the receipt of a success stays
``processed``."""

from __future__ import annotations

import asyncio
import json
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from tests.cli.test_operator_cli import config, run  # noqa: F401  (fixture)

from mssante.cli.common import with_store
from mssante.content.integration import Decision, integration_mdn, read_message
from mssante.operator.accept import receipt_notes
from mssante.store.models import MessageSummary, OutboundRecipient
from mssante.store.store import Store

DUPONT = "dupont@ch-xyz.mssante.fr"
APP_KO = "integration@medecin.mssante.fr"
APP_OK = "dpi@medecin.mssante.fr"


def test_a_ko_integration_receipt_is_an_integration_failure_with_its_code(
        config: str) -> None:  # noqa: F811
    assert run("operator", "user", "add", DUPONT, "--kind", "professional", "--name",
               "Dr Dupont", "--rpps", "10102727017", "-c", config)[0] == 0
    assert run("operator", "mailbox", "add", DUPONT, "--type", "PER", "--owner", DUPONT,
               "-c", config)[0] == 0
    original = EmailMessage()
    original["From"] = DUPONT
    original["To"] = f"{APP_KO}, {APP_OK}"
    original["Subject"] = "XDM/1.0/DDM+CR DUPONT Jeanne 01/01/1970"
    original["Message-ID"] = make_msgid(domain="ch-xyz.mssante.fr")
    original["Disposition-Notification-To"] = DUPONT
    original.set_content("Compte rendu\n")
    raw = original.as_bytes()
    message = read_message(raw)
    ko = integration_mdn(message, Decision(904, ("mismatch",)), mailbox=APP_KO,
                         to=DUPONT).as_bytes()
    ok = integration_mdn(message, Decision(None, ()), mailbox=APP_OK, to=DUPONT).as_bytes()

    async def sent_and_answered(store: Store) -> None:
        await store.accept_message(
            raw, envelope_from=DUPONT, local=[], sent=DUPONT,
            remote=[OutboundRecipient(APP_KO), OutboundRecipient(APP_OK)],
            summary=MessageSummary(message_id=original["Message-ID"],
                                   subject=original["Subject"], from_header=DUPONT,
                                   date_header=None))
        for sender, report in ((APP_KO, ko), (APP_OK, ok)):
            await store.accept_message(
                report, envelope_from=sender, local=[DUPONT], remote=[],
                summary=MessageSummary(message_id=None, subject="MDN", from_header=sender,
                                       date_header=None),
                reports=receipt_notes([DUPONT], report, [sender]))

    asyncio.run(with_store(Path(config), sent_and_answered))
    code, out = run("operator", "track", original["Message-ID"], "--json", "-c", config)
    assert code == 0, out
    timeline = json.loads(out)
    assert timeline["recipients"] == {APP_KO: "integration-failed", APP_OK: "processed"}
    [failed] = [e for e in timeline["events"] if e["recipient"] == APP_KO
                and e["event"] == "integration-failed"]
    assert failed["error"] == {"code": 904, "label": "INS incohérent"}
    assert failed["operator"] == "medecin.mssante.fr"
    [done] = [e for e in timeline["events"] if e["recipient"] == APP_OK
              and e["event"] == "processed"]
    assert done["error"] is None
    assert not any(e["event"] == "processed" for e in timeline["events"]
                   if e["recipient"] == APP_KO)
    # the table for people names the code and the label
    code, out = run("operator", "track", original["Message-ID"], "-c", config)
    assert code == 0
    assert f"  {APP_KO}: integration-failed 904 INS incohérent" in out.splitlines()
