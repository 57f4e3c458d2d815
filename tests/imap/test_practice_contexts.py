"""Several practice contexts over real servers (issue 9 §5): a professional with two PER
mailboxes at one operator, and one with PER mailboxes at two operators, seen through
imaplib and smtplib as their mail clients see them.

The second mailbox is added the way an operator does it (``mssante operator mailbox
add``, on the running operator's database) while the professional's mail client is
connected.
"""

from __future__ import annotations

import imaplib
import uuid
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from mssante.auth.passwords import hash_password
from mssante.cli import app
from mssante.domain.mailboxes import MailboxType, PersonKind, Rules
from tests.e2e.mail import message, submission, unique
from tests.imap.conftest import HOSPITAL, Account, connect, fresh_person, login
from tests.imap.test_imap_server import list_names, ok, status, wait_for_subject

PRACTICE = "medecin.mssante.fr"
NAMESPACE = [b'(("" "/")) NIL (("Shared/" "/"))']


def add_per(env: Any, address: str, owner: str) -> str:
    """``mssante operator mailbox add ADDRESS --type PER --owner OWNER``; its output."""
    domain = address.rpartition("@")[2]
    result = CliRunner().invoke(app, ["operator", "mailbox", "add", address, "--type", "PER",
                                      "--owner", owner, "-c", env.operator(domain)["config"]])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def send(env: Any, account: Account, sender: str, to: list[str], subject: str,
         domain: str = HOSPITAL) -> None:
    with submission(env, domain) as smtp:
        smtp.login(account.login, account.password)
        smtp.send_message(message(sender, to, subject), from_addr=sender)


def inbox_identity(client: imaplib.IMAP4) -> tuple[int, int]:
    """(UIDVALIDITY, MESSAGES) of the client's INBOX: what a mail client keeps."""
    found = status(client, "INBOX", "UIDVALIDITY MESSAGES")
    return found["UIDVALIDITY"], found["MESSAGES"]


def test_a_second_per_mailbox_appears_beside_the_home_which_stays_the_inbox(
        environment: Any) -> None:
    """Dr X's ``x@`` is his INBOX; the operator gives him ``x.consult@`` (which sorts
    before ``x@``): his INBOX is unchanged, in the open session and at the next login,
    the new mailbox is listed under Shared/ with an owner's rights, and he sends as
    either."""
    dr, colleague = fresh_person(environment), fresh_person(environment)
    consult = dr.address.replace("@", ".consult@")
    before = unique("Avant")
    send(environment, colleague, colleague.address, [dr.address], before)
    client = login(environment, dr)
    try:
        wait_for_subject(client, "INBOX", before)
        inbox = inbox_identity(client)

        out = add_per(environment, consult, dr.login)
        assert f"{dr.login} keeps {dr.address} as home (IMAP INBOX)" in out
        assert f"under Shared/{consult}/" in out

        # the session that was open when the mailbox was added
        assert inbox_identity(client) == inbox
        ok(client.select("INBOX", readonly=True))
        assert ok(client.uid("SEARCH", "SUBJECT", f'"{before}"'))[0] != b""
        assert {f"Shared/{consult}/INBOX", f"Shared/{consult}/Sent"} <= list_names(client)
    finally:
        client.logout()

    again = login(environment, dr)
    try:
        assert ok(again.namespace()) == NAMESPACE
        assert inbox_identity(again) == inbox
        names = list_names(again)
        assert "INBOX" in names and f"Shared/{consult}/INBOX" in names
        assert not any(dr.address in name for name in names)  # the home is not shared too
        rights = ok(again.myrights(f"Shared/{consult}/INBOX"))[0]
        assert rights.endswith(b" lrswipkxtea"), rights
        ok(again.select(f"Shared/{consult}/INBOX"))
        assert "READ-WRITE" in again.untagged_responses

        as_home, as_consult, to_consult = (unique("Depuis le CH"), unique("Depuis la consult"),
                                           unique("Pour la consult"))
        send(environment, dr, dr.address, [colleague.address], as_home)
        send(environment, dr, consult, [colleague.address], as_consult)
        send(environment, colleague, colleague.address, [consult], to_consult)
        wait_for_subject(again, "Sent", as_home)
        wait_for_subject(again, f"Shared/{consult}/Sent", as_consult)
        wait_for_subject(again, f"Shared/{consult}/INBOX", to_consult)
        ok(again.select("INBOX", readonly=True))
        assert ok(again.uid("SEARCH", "SUBJECT", f'"{to_consult}"')) == [b""]
    finally:
        again.logout()
    theirs = login(environment, colleague)
    try:
        wait_for_subject(theirs, "INBOX", as_home)
        wait_for_subject(theirs, "INBOX", as_consult)
    finally:
        theirs.logout()


def test_per_mailboxes_at_two_operators_each_login_has_its_own_home(
        environment: Any, tmp_path: Path) -> None:
    """One professional (one RPPS) with a PER mailbox at the hospital and another at the
    private-practice operator: each operator's login, by password or with the card,
    opens on that operator's mailbox, and mail to either address arrives there."""
    name = f"t{uuid.uuid4().hex[:10]}"
    rpps = str(uuid.uuid4().int)[:11]
    accounts = {domain: Account(f"{name}@{domain}", uuid.uuid4().hex, f"{name}@{domain}")
                for domain in (HOSPITAL, PRACTICE)}

    async def create(store: Any, account: Account) -> None:
        await store.create_person(account.login, PersonKind.HEALTH, f"Dr {name}",
                                  password_hash=hash_password(account.password), rpps=rpps)
        await store.create_mailbox(account.address, MailboxType.PER, rules=Rules(),
                                   owner=account.login)

    for domain, account in accounts.items():
        environment.runner.call(create(environment.service(domain).store, account))
    hospital, practice = accounts[HOSPITAL], accounts[PRACTICE]
    colleague = fresh_person(environment)

    both, across = unique("Aux deux adresses"), unique("Du CH au cabinet")
    send(environment, colleague, colleague.address, [hospital.address, practice.address], both)
    send(environment, hospital, hospital.address, [practice.address], across)

    card = environment.env.trust_space.pki.issue_person(
        f"Dr {rpps}", given_name="Test", surname=name, id_nat_ps="8" + rpps,
        out_dir=tmp_path, name="card")
    for domain, account in accounts.items():
        by_password = login(environment, account, domain)
        by_card = connect(environment, domain, cert=(str(card.cert_file), str(card.key_file)))
        try:
            assert by_card.authenticate("EXTERNAL", lambda _challenge: b"")[0] == "OK"
            for client in (by_password, by_card):
                assert ok(client.namespace()) == NAMESPACE
                wait_for_subject(client, "INBOX", both)
                assert not any(n.startswith("Shared/") for n in list_names(client))
            if domain == PRACTICE:
                wait_for_subject(by_password, "INBOX", across)
            else:
                wait_for_subject(by_password, "Sent", across)
                ok(by_password.select("INBOX", readonly=True))
                assert ok(by_password.uid("SEARCH", "SUBJECT", f'"{across}"')) == [b""]
        finally:
            by_password.logout()
            by_card.logout()
