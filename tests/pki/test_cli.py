"""`mssante pki ...` driven through Typer's CliRunner, on a real PKI directory."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from typer.testing import CliRunner, Result

from mssante.cli.pki import app
from mssante.pki.ca import PKI, serial_of

runner = CliRunner()


def run(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def ok(*args: str | Path) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


def fails(*args: str | Path) -> str:
    """Run a command that must fail cleanly; return its error message."""
    result = run(*args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # not a traceback
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ")
    return result.stderr


def listed(pki_dir: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(ok("list", "--dir", pki_dir, "--json").stdout)
    return data


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli") / "pki"
    result = ok("init", "--dir", directory)
    assert f"PKI ready in {directory}" in result.stdout
    return directory


def test_init_creates_then_keeps_the_hierarchy(pki_dir: Path) -> None:
    root = (pki_dir / "root-ca.pem").read_bytes()
    for ca in ("root", "organisations", "persons"):
        assert (pki_dir / f"{ca}-ca.pem").is_file()
        assert (pki_dir / "crl" / f"{ca}.crl").is_file()
    ok("init", "--dir", pki_dir)
    assert (pki_dir / "root-ca.pem").read_bytes() == root


def test_issue_server_prints_serial_dn_and_files(pki_dir: Path, tmp_path: Path) -> None:
    result = ok("issue", "server", "--dir", pki_dir, "--cn", "mta.ch-xyz.mssante.fr",
                "--org", "CH XYZ", "--ou", "318310021300028", "--state", "Paris (75)",
                "--dns", "mx.ch-xyz.mssante.fr", "--dns", "localhost", "--ip", "127.0.0.1",
                "--out", tmp_path, "--name", "mta")
    cert_file, key_file = tmp_path / "mta.pem", tmp_path / "mta.key"
    serial = serial_of(cert_file)
    assert f"serial    {serial}" in result.stdout
    dn = "CN=mta.ch-xyz.mssante.fr,OU=318310021300028,O=CH XYZ,ST=Paris (75),C=FR"
    assert dn in result.stdout
    assert str(cert_file) in result.stdout and str(key_file) in result.stdout
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    leaf = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [
        "mta.ch-xyz.mssante.fr", "mx.ch-xyz.mssante.fr", "localhost"]
    record = next(r for r in listed(pki_dir) if r["serial"] == serial)
    assert record["kind"] == "server" and record["subject_dn"] == dn


@pytest.mark.parametrize(("kind", "extra", "dn"), [
    ("person", ["--given-name", "Jean", "--surname", "Dupont", "--id-nat-ps", "810102727017"],
     "CN=Jean Dupont,serialNumber=810102727017,GN=Jean,SN=Dupont,C=FR"),
    ("organisation", ["--org", "CH XYZ", "--ou", "1580008803"],
     "CN=Jean Dupont,OU=1580008803,O=CH XYZ,C=FR"),
    ("signing", [], "CN=Jean Dupont,O=MSSanté trust space,C=FR"),
])
def test_issue_other_kinds(pki_dir: Path, tmp_path: Path, kind: str, extra: list[str],
                           dn: str) -> None:
    result = ok("issue", kind, "--dir", pki_dir, "--cn", "Jean Dupont", "--out", tmp_path,
                "--name", kind, "--days", "10", *extra)
    assert dn in result.stdout
    serial = serial_of(tmp_path / f"{kind}.pem")
    record = next(r for r in listed(pki_dir) if r["serial"] == serial)
    assert record["kind"] == kind and record["subject_dn"] == dn


def test_revoke_by_serial_and_by_file_then_list_json(pki_dir: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        ok("issue", "organisation", "--dir", pki_dir, "--cn", f"app-{name}", "--org", "O",
           "--out", tmp_path, "--name", name)
    serial_a, serial_b = serial_of(tmp_path / "a.pem"), serial_of(tmp_path / "b.pem")

    result = ok("revoke", str(serial_a), "--dir", pki_dir, "--reason", "key-compromise")
    assert f"revoked serial {serial_a} (CN=app-a,O=O,C=FR)" in result.stdout
    assert "keyCompromise" in result.stdout
    ok("revoke", tmp_path / "b.pem", "--dir", pki_dir)

    records = {r["serial"]: r for r in listed(pki_dir)}
    assert records[serial_a]["reason"] == "keyCompromise"
    assert records[serial_b]["reason"] == "unspecified"
    assert records[serial_a]["revoked_at"] and records[serial_b]["revoked_at"]
    crl = x509.load_der_x509_crl((pki_dir / "crl" / "organisations.crl").read_bytes())
    assert {serial_a, serial_b} <= {entry.serial_number for entry in crl}


def test_list_prints_a_table(pki_dir: Path) -> None:
    serials = [r["serial"] for r in listed(pki_dir)]
    assert serials
    result = ok("list", "--dir", pki_dir)
    for serial in serials:
        assert str(serial) in result.stdout


def test_config_file_locates_the_pki_under_the_data_dir(tmp_path: Path) -> None:
    config = tmp_path / "trust-space.toml"
    config.write_text('[trust_space]\ndata_dir = "data"\ncrl_validity = 172800\n')
    ok("init", "--config", config)
    pki = PKI.load(tmp_path / "data" / "pki")
    crl = x509.load_der_x509_crl(pki.crl_file_path("root").read_bytes())
    assert crl.next_update_utc is not None
    assert (crl.next_update_utc - crl.last_update_utc).total_seconds() == 172800
    ok("issue", "signing", "--config", config, "--cn", "signer", "--out", tmp_path,
       "--name", "signer")
    assert [r["kind"] for r in json.loads(ok("list", "--config", config, "--json").stdout)] \
        == ["signing"]


def test_errors_exit_1_with_a_message(pki_dir: Path, tmp_path: Path) -> None:
    assert "exactly one of --dir or --config" in fails("list")
    assert "exactly one of --dir or --config" in fails(
        "list", "--dir", pki_dir, "--config", tmp_path / "x.toml")
    assert "mssante pki init" in fails("list", "--dir", tmp_path / "none")
    assert "configuration file not found" in fails("list", "--config", tmp_path / "x.toml")
    assert "no certificate with serial 12345" in fails("revoke", "12345", "--dir", pki_dir)
    assert "neither a serial number nor a certificate file" in fails(
        "revoke", "not-a-serial", "--dir", pki_dir)
    assert "needs --given-name, --surname and --id-nat-ps" in fails(
        "issue", "person", "--dir", pki_dir, "--cn", "X", "--out", tmp_path, "--name", "x")
    assert "needs --org" in fails(
        "issue", "server", "--dir", pki_dir, "--cn", "mta.x.mssante.fr", "--out", tmp_path,
        "--name", "x")
    assert "apply to server certificates only" in fails(
        "issue", "signing", "--dir", pki_dir, "--cn", "s", "--out", tmp_path, "--name", "x",
        "--ip", "127.0.0.1")
    assert "apply to server and organisation certificates only" in fails(
        "issue", "signing", "--dir", pki_dir, "--cn", "s", "--out", tmp_path, "--name", "x",
        "--org", "O")
    assert "unknown revocation reason" in fails(
        "revoke", "1", "--dir", pki_dir, "--reason", "bored")
    assert not list(tmp_path.glob("x.*"))
