"""Clinical documents from end to end: Dr Martin (medecin.mssante.fr) sends a CDA with
`mssante send` to the hospital's APP mailbox; the hospital's receiving program
(`mssante operator integrate`, certificate login) writes the documents, answers with
an integration MDN, and Dr Martin's operator shows the message `processed`. Hostile
archives (path traversal, XXE), a patient mismatch and another XDM version get the KO
MDN with their code, and nothing is written; a second run processes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from mssante.domain.ins import ins_key
from tests.conftest import RunningEnvironment
from tests.content.xdmtools import (
    CDA,
    CONSULTATION,
    CONSULTATION_PDF,
    DATA,
    METADATA,
    members,
    rezip,
    valid_archive,
    with_document,
    zip_of,
)
from tests.e2e.mail import message, send, unique
from tests.e2e.test_trust_space_rules import _body

APP = "compte_rendu_patient_noreply@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
DUPONT = "dupont@ch-xyz.mssante.fr"
HOSPITAL = "ch-xyz.mssante.fr"
PRACTICE = "medecin.mssante.fr"
XXE = (b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
       b"<r>&e;</r>\n")


def mssante(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mssante", *args], capture_output=True,
                          text=True, timeout=120, check=False, env=env)


def env_file(environment: RunningEnvironment) -> str:
    return str(environment.env.data_dir / "environment.json")


def integrate(environment: RunningEnvironment, into: Path, *args: str
              ) -> subprocess.CompletedProcess[str]:
    return mssante("operator", "integrate", "--config", environment.operator(HOSPITAL)["config"],
                   "--mailbox", APP, "--into", str(into), "--json", *args)


def outcomes(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return {row["message_id"]: row for row in rows}


def document_mail(subject: str, archive: bytes) -> EmailMessage:
    """A message as a careless or hostile sender writes it: the archive not checked."""
    msg = message(MARTIN, APP, subject, Disposition_Notification_To=MARTIN)
    msg.add_attachment(archive, maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    return msg


def another_patient() -> bytes:
    nir = "1850575123456"
    other = f"{nir}{ins_key(nir):02d}"
    cda = CONSULTATION.replace(b'extension="279035121518989"', f'extension="{other}"'.encode())
    return with_document(valid_archive(), CDA, cda)


def test_send_integrate_mdn_and_the_timeline_shows_processed(
        environment: RunningEnvironment, tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text(environment.password(MARTIN) + "\n")
    into = tmp_path / "integrated"
    pdf = tmp_path / "CR.pdf"
    pdf.write_bytes(CONSULTATION_PDF)
    sent = mssante("send", "--env", env_file(environment), "--from", MARTIN, "--to", APP,
                   "--cda", str(DATA / "cr-consultation.xml"), "--pdf", str(pdf),
                   "--login", MARTIN, "--password-file", str(password), "--read-receipt",
                   "--dsn", "--json")
    assert sent.returncode == 0, sent.stderr
    summary = json.loads(sent.stdout)
    assert summary["recipients"] == [APP]
    message_id = summary["message_id"]
    # hostile and wrong messages, written by hand (mssante send would refuse to)
    traversal = dict(members(valid_archive()))
    traversal["../../evil.txt"] = b"written outside"
    xxe = dict(members(valid_archive()))
    xxe[METADATA] = XXE
    wrong = {"traversal": (unique("XDM/1.0/DDM+CR"), zip_of(list(traversal.items()))),
             "xxe": (unique("XDM/1.0/DDM+CR"), rezip(xxe)),
             "mismatch": (unique("XDM/1.0/DDM+CR"), another_patient()),
             "version": (unique("XDM/2.0/DDM+CR"), valid_archive())}
    ids = {}
    for name, (subject, archive) in wrong.items():
        mail = document_mail(subject, archive)
        send(environment, MARTIN, mail)
        ids[name] = mail["Message-ID"]
    environment.wait_for(lambda: {message_id, *ids.values()} <= {
        m.message_id for m in environment.messages(APP)}, 30, "the messages at the APP")

    first = integrate(environment, into)
    found = outcomes(first)
    ok = found[message_id]
    assert (ok["status"], ok["code"], ok["mdn"]) == ("processed", None, "sent")
    written = {hashlib.sha1(Path(f).read_bytes()).hexdigest() for f in ok["files"]}
    assert written == {hashlib.sha1(CONSULTATION).hexdigest(),
                       hashlib.sha1(CONSULTATION_PDF).hexdigest()}
    assert all(Path(f).parent.parent == into for f in ok["files"])
    codes = {name: (found[ids[name]]["status"], found[ids[name]]["code"],
                    found[ids[name]]["files"]) for name in ids}
    assert codes == {"traversal": ("error", 906, []), "xxe": ("error", 906, []),
                     "mismatch": ("error", 904, []), "version": ("error", 900, [])}
    # nothing outside --into, and inside only the integrated message's folder
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))
    assert not (tmp_path.parent / "evil.txt").exists()
    assert [p.name for p in into.iterdir()] == [Path(ok["files"][0]).parent.name]

    # the KO MDN: its code in the subject and the report, the original archive back
    subject = wrong["mismatch"][0]
    ko = environment.wait_message(
        MARTIN, f"[KO Intégration système !][904] {subject}", timeout=30)
    body = environment.runner.call(_body(environment, MARTIN, ko.body_sha256))
    assert b"report-type=\"disposition-notification\"" in body
    assert b"Disposition: automatic-action/MDN-sent-automatically; processed/Error: 904^" \
        in body
    assert b'filename="IHE_XDM.ZIP"' in body

    # the sender's operator: the message processed by the APP mailbox
    def processed() -> bool:
        result = mssante("operator", "track", message_id, "--config",
                         environment.operator(PRACTICE)["config"], "--json")
        if result.returncode != 0:
            return False
        timeline = json.loads(result.stdout)
        return ("processed", APP) in [(e["event"], e["recipient"])
                                      for e in timeline["events"]]

    environment.wait_for(processed, 30, "the processed MDN in the timeline")

    # a second run: everything is marked, nothing is processed again
    again = integrate(environment, into)
    assert again.returncode == 0, again.stderr
    assert not {message_id, *ids.values()} & set(outcomes(again))
    flags = {m.message_id: m.flags for m in environment.messages(APP)}
    assert {"$Integre", "$MDNSent", "\\Seen"} <= set(flags[message_id])
    assert {"$IntegrationError", "$MDNSent"} <= set(flags[ids["xxe"]])


def test_send_refusals_are_clear(environment: RunningEnvironment, tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("not the password\n")
    cda = str(DATA / "cr-consultation.xml")
    wrong = mssante("send", "--env", env_file(environment), "--from", MARTIN, "--to", APP,
                    "--cda", cda, "--login", MARTIN, "--password-file", str(password))
    assert wrong.returncode == 1
    assert f"login {MARTIN} refused: 535" in " ".join(wrong.stderr.split())
    # the APP mailbox's certificate does not make its holder Dr Dupont
    app = environment.description["applications"][0]
    other = mssante("send", "--env", env_file(environment), "--from", DUPONT, "--to", MARTIN,
                    "--cda", cda, "--cert", app["cert_file"], "--key", app["key_file"])
    assert other.returncode == 1
    assert f"sender {DUPONT} refused: 550" in " ".join(other.stderr.split())
    # no password on the command line: none given is an error before any connection
    none = mssante("send", "--env", env_file(environment), "--from", MARTIN, "--to", APP,
                   "--cda", cda, "--login", MARTIN,
                   env={k: v for k, v in os.environ.items()
                        if k != "MSSANTE_PASSWORD"})
    assert none.returncode == 1 and "MSSANTE_PASSWORD" in none.stderr


def test_the_application_sends_documents_with_its_certificate(
        environment: RunningEnvironment) -> None:
    app = environment.description["applications"][0]
    op = environment.operator(HOSPITAL)["submissions"]
    sent = mssante("send", "--server", f"{op['host']}:{op['port']}", "--tls", "implicit",
                   "--ca", environment.ca_file, "--from", APP, "--to", MARTIN,
                   "--cda", str(DATA / "cr-consultation.xml"), "--subject",
                   unique("XDM/1.0/DDM+CR"), "--cert", app["cert_file"], "--key",
                   app["key_file"], "--json")
    assert sent.returncode == 0, sent.stderr
    message_id = json.loads(sent.stdout)["message_id"]
    environment.wait_for(lambda: message_id in {m.message_id
                                                for m in environment.messages(MARTIN)},
                         30, "the application's message at Dr Martin's")


def test_watch_integrates_what_arrives_and_stops_on_sigterm(
        environment: RunningEnvironment, tmp_path: Path) -> None:
    into = tmp_path / "watched"
    out = (tmp_path / "out.jsonl").open("w")
    watcher = subprocess.Popen(
        [sys.executable, "-m", "mssante", "operator", "integrate", "--config",
         environment.operator(HOSPITAL)["config"], "--mailbox", APP, "--into", str(into),
         "--json", "--watch"], stdout=out, stderr=subprocess.PIPE, text=True)
    try:
        environment.wait_for(into.exists, 30, "the watcher's first pass")
        time.sleep(1)  # in IDLE by now
        mail = document_mail(unique("XDM/1.0/DDM+CR"), valid_archive())
        send(environment, MARTIN, mail)

        def integrated() -> bool:
            flags = {m.message_id: m.flags for m in environment.messages(APP)}
            return "$MDNSent" in flags.get(mail["Message-ID"], frozenset())

        environment.wait_for(integrated, 30, "the watcher to integrate the new message")
    finally:
        watcher.send_signal(signal.SIGTERM)
        _, stderr = watcher.communicate(timeout=30)
        out.close()
    assert watcher.returncode == 0, stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["message_id"] == mail["Message-ID"])
    assert (row["status"], row["mdn"], len(row["files"])) == ("processed", "sent", 2)
