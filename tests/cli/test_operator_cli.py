"""`mssante operator ...` as an administrator types it (typer's runner, a real store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mssante.cli import app

CONFIG = """
[operator]
domains = ["ch-xyz.mssante.fr"]
hostname = "mta.ch-xyz.mssante.fr"
data_dir = "data"
[tls]
cert_file = "mta.pem"
key_file = "mta.key"
ca_file = "root.pem"
[trust]
url = "https://127.0.0.1:1"
"""


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "operator.toml"
    path.write_text(CONFIG)
    return str(path)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_people_and_mailboxes(config: str) -> None:
    code, out = run("operator", "user", "add", "dupont@ch-xyz.mssante.fr", "--kind",
                    "professional", "--name", "Dr Dupont", "--rpps", "10102727017", "-c", config)
    assert code == 0 and "password:" in out
    assert run("operator", "user", "add", "marie.bernard", "--kind", "staff", "--name",
               "Marie Bernard", "--password", "s3cret-s3cret", "-c", config)[0] == 0
    assert run("operator", "mailbox", "add", "dupont@ch-xyz.mssante.fr", "--type", "PER",
               "--owner", "dupont@ch-xyz.mssante.fr", "-c", config)[0] == 0
    assert run("operator", "mailbox", "add", "cardiologie@ch-xyz.mssante.fr", "--type", "ORG",
               "--responsible", "dupont@ch-xyz.mssante.fr", "-c", config)[0] == 0
    assert run("operator", "mailbox", "grant", "cardiologie@ch-xyz.mssante.fr", "marie.bernard",
               "-c", config)[0] == 0
    code, out = run("operator", "mailbox", "list", "--json", "-c", config)
    boxes = {b["address"]: b for b in json.loads(out)}
    assert boxes["cardiologie@ch-xyz.mssante.fr"]["type"] == "ORG"
    people = {p["login"]: p["role"] for p in boxes["cardiologie@ch-xyz.mssante.fr"]["people"]}
    assert people == {"dupont@ch-xyz.mssante.fr": "responsible", "marie.bernard": "authorised"}
    assert run("operator", "mailbox", "revoke", "cardiologie@ch-xyz.mssante.fr",
               "marie.bernard", "-c", config)[0] == 0
    code, out = run("operator", "mailbox", "list", "--json", "-c", config)
    cardio = next(b for b in json.loads(out) if b["address"].startswith("cardiologie"))
    assert [p["login"] for p in cardio["people"]] == ["dupont@ch-xyz.mssante.fr"]
    assert run("operator", "mailbox", "close", "dupont@ch-xyz.mssante.fr", "-c", config)[0] == 0
    code, out = run("operator", "mailbox", "list", "--json", "-c", config)
    assert not next(b for b in json.loads(out) if b["address"].startswith("dupont"))["active"]
    code, out = run("operator", "user", "list", "--json", "-c", config)
    assert {p["login"] for p in json.loads(out)} == {"dupont@ch-xyz.mssante.fr",
                                                     "marie.bernard"}
    code, out = run("operator", "messages", "dupont@ch-xyz.mssante.fr", "--json", "-c", config)
    assert code == 0 and json.loads(out) == []
    code, out = run("operator", "queue", "list", "--json", "-c", config)
    assert code == 0 and json.loads(out) == []


def test_a_second_per_mailbox_is_shown_beside_the_home(config: str) -> None:
    """Issue 9 §5, as the operator typed it: Dr Dupont's second PER mailbox does not
    become his INBOX."""
    dupont = "dupont@ch-xyz.mssante.fr"
    assert run("operator", "user", "add", dupont, "--kind", "professional", "--name",
               "Dr Dupont", "--rpps", "10102727017", "-c", config)[0] == 0
    code, out = run("operator", "mailbox", "add", dupont, "--type", "PER", "--owner", dupont,
                    "-c", config)
    assert code == 0 and f"home of {dupont}: their IMAP INBOX" in out
    code, out = run("operator", "mailbox", "add", "dupont.consult@ch-xyz.mssante.fr", "--type",
                    "PER", "--owner", dupont, "-c", config)
    assert code == 0
    assert (f"{dupont} keeps {dupont} as home (IMAP INBOX); this one is shown beside it, "
            "under Shared/dupont.consult@ch-xyz.mssante.fr/") in " ".join(out.split())
    code, out = run("operator", "user", "list", "--json", "-c", config)
    assert [(p["login"], p["home"]) for p in json.loads(out)] == [(dupont, dupont)]


@pytest.mark.parametrize("args,message", [
    (["user", "add", "x@ch-xyz.mssante.fr", "--kind", "professional", "--name", "X"],
     "needs --rpps"),
    (["user", "add", "bad login", "--kind", "staff", "--name", "X"], "login 'bad login'"),
    (["user", "add", "12345@patient.mssante.fr", "--kind", "patient", "--name", "X"],
     "INS"),
    (["mailbox", "add", "a@medecin.mssante.fr", "--type", "ORG", "--responsible", "x"],
     "not a domain of this operator"),
    (["mailbox", "add", "a@ch-xyz.mssante.fr", "--type", "ORG", "--responsible", "nobody"],
     "nobody"),
    (["messages", "nobody@ch-xyz.mssante.fr"], "no mailbox"),
    (["queue", "delete", "42"], "42"),
])
def test_errors_are_one_clear_line(config: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["operator", *args, "-c", config])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert message in result.output


def test_policy_refusals(config: str) -> None:
    run("operator", "user", "add", "marie.bernard", "--kind", "staff", "--name", "M", "-c", config)
    code, out = run("operator", "mailbox", "add", "marie@ch-xyz.mssante.fr", "--type", "PER",
                    "--owner", "marie.bernard", "-c", config)
    assert code == 1 and "only health professionals" in out


def test_bad_choices_and_missing_config(config: str, tmp_path: Path) -> None:
    code, out = run("operator", "queue", "list", "--status", "bogus", "-c", config)
    assert code == 2 and "bogus" in out
    code, out = run("operator", "user", "list", "-c", str(tmp_path / "none.toml"))
    assert code == 1 and "not found" in out


def test_one_certificate_cannot_be_bound_to_two_app_mailboxes(config: str) -> None:
    """The command names the mailbox the certificate already identifies; a DN pasted
    as openssl prints it is the same DN; one that does not parse is named."""
    assert run("operator", "user", "add", "dupont@ch-xyz.mssante.fr", "--kind",
               "professional", "--name", "Dr Dupont", "--rpps", "10102727017", "-c",
               config)[0] == 0
    app = ("--type", "APP", "--responsible", "dupont@ch-xyz.mssante.fr", "-c", config)
    dn = "CN=DPI CH XYZ,OU=750000001,O=CH XYZ,C=FR"
    assert run("operator", "mailbox", "add", "dpi@ch-xyz.mssante.fr", "--cert-dn", dn,
               *app)[0] == 0
    code, out = run("operator", "mailbox", "add", "alertes@ch-xyz.mssante.fr", "--cert-dn",
                    "subject=C = FR, O = CH XYZ, OU = 750000001, CN = DPI CH XYZ", *app)
    assert code == 1
    said = " ".join(out.split())
    assert (f"error: the certificate {dn} already identifies the APP mailbox "
            "dpi@ch-xyz.mssante.fr: one certificate DN identifies one APP mailbox") in said
    code, out = run("operator", "mailbox", "add", "alertes@ch-xyz.mssante.fr", "--cert-dn",
                    "CN=x,C=FRA", *app)
    assert code == 1 and "--cert-dn: not a distinguished name" in out
    listed = json.loads(run("operator", "mailbox", "list", "--json", "-c", config)[1])
    assert [b["address"] for b in listed] == ["dpi@ch-xyz.mssante.fr"]
    assert run("operator", "mailbox", "add", "alertes@ch-xyz.mssante.fr", "--cert-dn",
               "CN=Alertes CH XYZ,OU=750000001,O=CH XYZ,C=FR", *app)[0] == 0
