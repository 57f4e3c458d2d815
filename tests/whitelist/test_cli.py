"""`mssante whitelist ...` and `mssante trust ...`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mssante.cli import app
from mssante.pki.ca import IssuedCertificate
from mssante.pki.tls import client_context
from mssante.trustspace.service import TrustSpace
from mssante.whitelist.xmlformat import from_xml

DN = "CN=mta.medecin.example,OU=12345678901234,O=Medecins,C=FR"
runner = CliRunner()


def write_config(trust_space: TrustSpace, port: int = 8443) -> Path:
    path = trust_space.data_dir.parent / "trust.toml"
    path.write_text(f'[trust_space]\ndata_dir = "{trust_space.data_dir.name}"\n'
                    f'host = "127.0.0.1"\nport = {port}\n', encoding="utf-8")
    return path


def test_add_list_remove(trust_space: TrustSpace) -> None:
    config = str(write_config(trust_space))
    added = runner.invoke(app, ["whitelist", "add", "Medecin.MSSante.fr", "--dn", DN,
                                "--description", "Médecins libéraux", "--responsible",
                                "dsi@medecin.example", "--support", "support@medecin.example",
                                "--config", config])
    assert added.exit_code == 0, added.output
    assert "added medecin.mssante.fr" in added.stdout
    published = from_xml(trust_space.publisher.xml_file.read_bytes())
    (entry,) = published.entries_for("medecin.mssante.fr")
    assert (entry.description, entry.operator_dn, entry.support_contact) == (
        "Médecins libéraux", DN, "support@medecin.example")

    listed = runner.invoke(app, ["whitelist", "list", "--config", config, "--json"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.stdout)
    names = {e["name"] for e in data["entries"]}
    assert names == {"ch-xyz.mssante.fr", "medecin.mssante.fr"}
    table = runner.invoke(app, ["whitelist", "list", "--config", config])
    assert table.exit_code == 0 and "medecin.mssante.fr" in table.stdout

    removed = runner.invoke(app, ["whitelist", "remove", "medecin.mssante.fr", "--dn", DN,
                                  "--config", config])
    assert removed.exit_code == 0, removed.output
    assert not trust_space.publisher.current().is_listed("medecin.mssante.fr")


def test_errors_exit_1_with_one_line(trust_space: TrustSpace, tmp_path: Path) -> None:
    config = str(write_config(trust_space))
    before = trust_space.publisher.xml_file.read_bytes()
    cases = [
        (["whitelist", "add", "not a domain", "--dn", DN, "--config", config],
         "not a valid domain"),
        (["whitelist", "add", "gmail.com", "--dn", DN, "--config", config],
         "not in the trust-space namespace"),
        (["whitelist", "add", "medecin.mssante.fr", "--dn", "just text", "--config", config],
         "not a valid distinguished name"),
        (["whitelist", "remove", "absent.mssante.fr", "--config", config],
         "not on the whitelist"),
        (["whitelist", "list", "--config", str(tmp_path / "missing.toml")],
         "configuration file not found"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1
    assert trust_space.publisher.xml_file.read_bytes() == before


def openssl_subject(cert_file: Path, *nameopt: str) -> str:
    """The subject line as ``openssl x509 -noout -subject`` prints it (what people paste)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    return subprocess.run([openssl, "x509", "-in", str(cert_file), "-noout", "-subject",
                           *nameopt], capture_output=True, text=True, check=True).stdout.strip()


def test_dn_pasted_from_openssl_is_stored_as_the_certificate_says(
        trust_space: TrustSpace, mta: IssuedCertificate) -> None:
    """OpenSSL's default print lists C first: taken as it is, it never matched."""
    config = str(write_config(trust_space))
    forms = [openssl_subject(mta.cert_file),  # subject=C = FR, ..., CN = mta...
             openssl_subject(mta.cert_file, "-nameopt", "compat"),  # /C=FR/.../CN=mta...
             openssl_subject(mta.cert_file, "-nameopt", "rfc2253"),
             ", ".join(f"{t.lower()} = {v}" for t, _, v in
                       (ava.partition("=") for ava in mta.subject_dn.split(",")))]
    assert forms[0].startswith("subject=C = FR, ")
    for form in forms:
        if trust_space.publisher.current().is_listed("medecin.mssante.fr"):
            trust_space.publisher.remove("medecin.mssante.fr", None)
        result = runner.invoke(app, ["whitelist", "add", "medecin.mssante.fr", "--dn", form,
                                     "--config", config])
        assert result.exit_code == 0, (form, result.output)
        assert result.stderr == "", (form, result.stderr)  # that certificate exists
        (entry,) = trust_space.publisher.current().entries_for("medecin.mssante.fr")
        assert entry.operator_dn == mta.subject_dn, form
        assert trust_space.publisher.current().allows("medecin.mssante.fr", mta.subject_dn)


def test_a_dn_no_issued_certificate_has_is_added_with_a_warning(
        trust_space: TrustSpace, mta: IssuedCertificate) -> None:
    config = str(write_config(trust_space))
    reversed_dn = ",".join(reversed(mta.subject_dn.split(",")))  # C=FR,...,CN=mta...
    result = runner.invoke(app, ["whitelist", "add", "medecin.mssante.fr", "--dn", reversed_dn,
                                 "--config", config])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: no certificate issued by this trust space has "
                                    f"the DN {reversed_dn}")
    assert f"same attributes in another order: {mta.subject_dn}" in result.stderr
    assert trust_space.publisher.current().is_listed("medecin.mssante.fr")


def test_trust_init_creates_the_trust_space(tmp_path: Path) -> None:
    config = tmp_path / "trust.toml"
    config.write_text('[trust_space]\ndata_dir = "ts"\n', encoding="utf-8")
    result = runner.invoke(app, ["trust", "init", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "ts" / "pki" / "root-ca.pem") in result.stdout
    ts = TrustSpace.create_or_load(tmp_path / "ts")
    assert ts.publisher.is_published() and len(ts.publisher.current()) == 0


def test_trust_serve_until_sigterm(trust_space: TrustSpace) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_config(trust_space, port)
    process = subprocess.Popen(
        [sys.executable, "-c", "from mssante.cli import main; main()",
         "trust", "serve", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"})
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert f"listening on https://127.0.0.1:{port}" in line, line
        context = client_context(trust_space.pki.root_cert_file, check_hostname=True)
        with httpx.Client(verify=context, timeout=5.0) as client:
            response = client.get(f"https://127.0.0.1:{port}/listeblanchemssante.xml")
        assert from_xml(response.content).is_listed("ch-xyz.mssante.fr")
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "trust space stopped" in err
    assert time.monotonic() - started < 10
