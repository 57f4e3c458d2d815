"""Health alerts in `mssante up`: `mssante alert send` to a selection of the directory,
across operators, marked $Alerte in IMAP, and `mssante alert status` converging."""

from __future__ import annotations

import imaplib
import json
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from mssante.cli import app
from tests.conftest import RunningEnvironment, environment_json
from tests.e2e.mail import unique

AUTHORITY = "alertes-sanitaires@ch-xyz.mssante.fr"
DUPONT = "dupont@ch-xyz.mssante.fr"  # Médecin (10), cardiologie (SM04), Paris (75)
MARTIN = "jean.martin@medecin.mssante.fr"  # Médecin (10), médecine générale (SM54), Rhône
CARDIO = "cardiologie@ch-xyz.mssante.fr"  # ORG of the hospital, Paris (75)


def env_file(environment: RunningEnvironment) -> str:
    return str(environment.env.data_dir / "environment.json")


@pytest.fixture(scope="module")
def published(environment: RunningEnvironment) -> RunningEnvironment:
    """The environment once its operators' mailboxes are in the directory's extract."""
    env = environment_json(environment)
    wanted = {DUPONT, MARTIN, CARDIO}
    with httpx.Client(verify=ssl.create_default_context(cafile=env["ca_file"])) as http:
        deadline = time.monotonic() + 30
        while not wanted <= set(http.get(env["directory"]["extract"]).text.split("|")):
            assert time.monotonic() < deadline, "the demo mailboxes were not published"
            time.sleep(0.2)
    return environment


def alert(environment: RunningEnvironment, tmp_path: Path, *criteria: str,
          text: str = "Rappel de lot : ne plus administrer le lot 12345.\n"
          ) -> tuple[dict[str, Any], str]:
    subject = unique("DGS-Urgent n°2026-01")
    body = tmp_path / "alerte.txt"
    body.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["alert", "send", "--env", env_file(environment),
                                      *criteria, "--subject", subject,
                                      "--body-file", str(body), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), subject


def status(environment: RunningEnvironment, alert_id: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["alert", "status", alert_id, "--env",
                                      env_file(environment), "--json"])
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def test_environment_json_names_the_authority(environment: RunningEnvironment) -> None:
    env = environment_json(environment)
    assert env["authority"]["mailbox"] == AUTHORITY
    assert Path(env["authority"]["config"]) == Path(
        environment.operator("ch-xyz.mssante.fr")["config"])
    assert AUTHORITY in {a["mailbox"] for a in env["applications"]}


def test_an_alert_reaches_exactly_the_selection_across_operators(
        published: RunningEnvironment, tmp_path: Path) -> None:
    environment = published
    sent, subject = alert(environment, tmp_path, "--profession", "10")
    assert sent["recipients"] == 2 and sent["refused"] == {}
    for address in (DUPONT, MARTIN):
        stored = environment.wait_message(address, subject)
        assert "$Alerte" in stored.flags
        assert stored.message_id == sent["message_id"]
    assert not [m for m in environment.messages(CARDIO) if m.subject == subject]

    # the receiving operator's IMAP announces the keyword and shows it on the message
    op = environment.operator("medecin.mssante.fr")["imaps"]
    tls = ssl.create_default_context(cafile=environment.ca_file)
    with imaplib.IMAP4_SSL(op["host"], op["port"], ssl_context=tls) as imap:
        imap.login(MARTIN, environment.password(MARTIN))
        imap.select("INBOX")
        assert b"$Alerte" in imap.untagged_responses["FLAGS"][0]
        typ, found = imap.uid("SEARCH", "KEYWORD", "$Alerte")
        assert typ == "OK" and found[0]
        uid = found[0].split()[-1]
        typ, data = imap.uid("FETCH", uid, "(FLAGS BODY.PEEK[HEADER])")
        head = b"".join(part[1] for part in data if isinstance(part, tuple))
        assert b"$Alerte" in data[0][0]
        assert f"X-MSS-ALERTE: {sent['id']}".encode() in head
        assert b"Priority: urgent" in head and b"Importance: high" in head

    deadline = time.monotonic() + 20
    while (counts := status(environment, sent["id"]))["delivered"] < 2:
        assert time.monotonic() < deadline, counts
        time.sleep(0.2)
    assert (counts["delivered"], counts["deferred"], counts["failed"]) == (2, 0, 0)
    assert counts["operators"] == {
        "ch-xyz.mssante.fr": {"delivered": 1, "deferred": 0, "failed": 0},
        "medecin.mssante.fr": {"delivered": 1, "deferred": 0, "failed": 0}}


def test_criteria_combine_organisations_of_a_department(
        published: RunningEnvironment, tmp_path: Path) -> None:
    sent, subject = alert(published, tmp_path, "--type", "ORG", "--department", "75")
    assert sent["recipients"] == 1
    assert "$Alerte" in published.wait_message(CARDIO, subject).flags
    sent, subject = alert(published, tmp_path, "--specialty", "SM54", "--type", "PER")
    assert sent["recipients"] == 1
    published.wait_message(MARTIN, subject)
    sent, subject = alert(published, tmp_path, "--structure", "1750000001",
                          "--structure", "1690000002", "--type", "PER")
    assert sent["recipients"] == 2


@pytest.mark.parametrize(("arguments", "says"), [
    (["--profession", "99"], "unknown profession code '99'"),
    (["--department", "2A"], "no mailbox of the directory matches: department 2A"),
    (["--type", "APP"], "mailbox type 'APP': PER or ORG"),
    (["--department", "750"], "department '750'"),
    ([], "no criterion"),
])
def test_a_wrong_selection_is_refused_clearly(published: RunningEnvironment, tmp_path: Path,
                                              arguments: list[str], says: str) -> None:
    body = tmp_path / "alerte.txt"
    body.write_text("Texte.\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["alert", "send", "--env", env_file(published),
                                      *arguments, "--subject", "Alerte",
                                      "--body-file", str(body)])
    assert result.exit_code == 1
    assert says in " ".join(result.output.split())


def test_a_missing_body_file_or_unknown_alert_is_refused_clearly(
        published: RunningEnvironment, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["alert", "send", "--env", env_file(published),
                                      "--profession", "10", "--subject", "Alerte",
                                      "--body-file", str(tmp_path / "absent.txt")])
    assert result.exit_code == 1
    assert "absent.txt: no such file" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["alert", "status", "20260101T000000-00000000",
                                      "--env", env_file(published), "--json"])
    assert result.exit_code == 1
    assert "no alert 20260101T000000-00000000" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["alert", "status", "nonsense", "--env",
                                      env_file(published)])
    assert result.exit_code == 1 and "alert id 'nonsense'" in result.output
    result = CliRunner().invoke(app, ["alert", "send", "--env", str(tmp_path / "no.json"),
                                      "--profession", "10", "--subject", "Alerte",
                                      "--body-file", str(tmp_path / "absent.txt")])
    assert result.exit_code == 1


def test_a_refused_recipient_is_named_and_the_others_get_the_alert(
        environment: RunningEnvironment) -> None:
    from mssante.alerts.send import authority_of, compose, submit
    from mssante.domain.alerts import new_alert_id

    path = environment.env.data_dir / "environment.json"
    authority = authority_of(environment_json(environment), path)
    subject = unique("MARS 2026-02")
    unknown = "inconnu@ch-xyz.mssante.fr"
    sent = submit(authority, [DUPONT, unknown, MARTIN],
                  compose(new_alert_id(), authority.mailbox, subject, "Texte.\n"), batch=2)
    assert sent.recipients == 2  # two transactions, MAIL and RCPTs pipelined
    assert list(sent.refused) == [unknown] and sent.refused[unknown].startswith("550")
    for address in (DUPONT, MARTIN):
        assert "$Alerte" in environment.wait_message(address, subject).flags
