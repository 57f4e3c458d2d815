"""The audit trail of running operators, read with `mssante operator audit`: a message
submitted, relayed, received, delivered and read over IMAP leaves each of its entries,
with who, when, where and which message; logins and failed logins too; and both
operators' logs verify."""

from __future__ import annotations

import contextlib
import imaplib
import json
import subprocess
import sys
from typing import Any

from tests.conftest import RunningEnvironment
from tests.e2e.mail import message, submission, unique
from tests.imap.conftest import connect, fresh_person

DUPONT = "dupont@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
HOSPITAL = "ch-xyz.mssante.fr"
PRACTICE = "medecin.mssante.fr"


def audit(env: RunningEnvironment, domain: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mssante", "operator", "audit", *args, "--config",
         env.operator(domain)["config"]], capture_output=True, text=True, timeout=60,
        check=False)


def entries(env: RunningEnvironment, domain: str, *args: str) -> list[dict[str, Any]]:
    done = audit(env, domain, "list", "--json", "--limit", "100000", *args)
    assert done.returncode == 0, done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


def test_a_message_leaves_its_trail_at_both_operators(environment: RunningEnvironment) -> None:
    subject = unique("Compte rendu")
    sent = message(DUPONT, [MARTIN, DUPONT], subject)
    message_id = sent["Message-ID"]
    with submission(environment, HOSPITAL, DUPONT) as smtp:
        smtp.send_message(sent)
    environment.wait_message(MARTIN, subject)
    client = connect(environment)
    try:
        client.login(DUPONT, environment.password(DUPONT))
        client.select("INBOX")
        _, found = client.uid("SEARCH", "HEADER", "Message-ID", message_id)
        uid = found[0].split()[-1]
        client.uid("FETCH", uid, "(BODY.PEEK[HEADER])")  # the header only: not a read
        client.uid("FETCH", uid, "(BODY.PEEK[])")
    finally:
        client.logout()

    def mine() -> list[dict[str, Any]]:
        return [e for e in entries(environment, HOSPITAL, "--mailbox", DUPONT)
                if e["message_id"] == message_id]

    environment.wait_for(lambda: {"relay", "read"} <= {e["action"] for e in mine()},
                         timeout=30)
    by_action = {e["action"]: e for e in mine()}
    assert set(by_action) == {"submission", "delivery", "relay", "read"}
    assert by_action["submission"]["actor"] == DUPONT
    assert by_action["submission"]["source"] == "ESMTPSA 127.0.0.1"
    assert MARTIN in by_action["submission"]["detail"]
    assert by_action["relay"]["detail"] == f"to {MARTIN}"
    assert by_action["read"]["actor"] == DUPONT
    assert by_action["read"]["source"] == "IMAP 127.0.0.1"
    assert len([e for e in mine() if e["action"] == "read"]) == 1  # the header fetch is not
    for entry in by_action.values():
        assert {"time", "action", "actor", "mailbox", "message_id"} <= set(entry)
    # the receiving operator: received from ch-xyz (its certificate), stored for Martin
    theirs = [e for e in entries(environment, PRACTICE) if e["message_id"] == message_id]
    assert {(e["action"], e["mailbox"]) for e in theirs} == {("reception", DUPONT),
                                                            ("delivery", MARTIN)}
    assert all("ch-xyz" in e["actor"] for e in theirs)  # the peer certificate's DN


def test_logins_and_failed_logins_are_recorded(environment: RunningEnvironment) -> None:
    person = fresh_person(environment)
    client = connect(environment)
    try:
        with contextlib.suppress(imaplib.IMAP4.error):
            client.login(person.login, "not the password")
        client.login(person.login, person.password)
    finally:
        client.logout()
    with submission(environment, HOSPITAL) as smtp:
        smtp.login(person.login, person.password)
    logins = [e for e in entries(environment, HOSPITAL)
              if e["action"] in ("login", "login.failed") and person.login in e["actor"]]
    assert [(e["action"], e["source"].split()[0]) for e in logins] == [
        ("login.failed", "IMAP"), ("login", "IMAP"), ("login", "submission")]
    assert logins[0]["detail"].startswith("LOGIN: ")


def test_both_operators_logs_verify(environment: RunningEnvironment) -> None:
    for domain in (HOSPITAL, PRACTICE):
        environment.wait_for(lambda d=domain: json.loads(  # type: ignore[misc]
            audit(environment, d, "verify", "--json").stdout)["pending"] == 0, timeout=10)
        done = audit(environment, domain, "verify", "--json")
        assert done.returncode == 0, done.stderr
        verdict = json.loads(done.stdout)
        assert verdict["ok"] and verdict["entries"] > 0 and verdict["checkpoints"] > 0
