"""`mssante xdm build` and `mssante xdm check`, run as a user runs them: a process of its
own, exit codes, stdout and stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.content.xdmtools import DATA, zip_of


def mssante(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mssante", "xdm", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def test_build_then_check(tmp_path: Path) -> None:
    built = mssante("build", "--cda", str(DATA / "cr-consultation.xml"),
                    "--pdf", str(DATA / "cr-consultation.pdf"), "--out", "IHE_XDM.ZIP",
                    cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert "2 documents" in built.stdout
    checked = mssante("check", "IHE_XDM.ZIP", "--json", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    result = json.loads(checked.stdout)
    assert result["patient_ins"] == "279035121518989"
    assert [(d["name"], d["mime_type"]) for d in result["documents"]] == [
        ("IHE_XDM/SUBSET01/DOC0001.XML", "text/xml"),
        ("IHE_XDM/SUBSET01/DOC0002.PDF", "application/pdf")]
    for document in result["documents"]:
        assert set(document) >= {"name", "mime_type", "sha1", "size"}
        assert len(document["sha1"]) == 40
    plain = mssante("check", "IHE_XDM.ZIP", cwd=tmp_path)
    assert plain.returncode == 0
    assert "279035121518989 (INS-NIR de test)" in plain.stdout


def test_check_with_extract(tmp_path: Path) -> None:
    mssante("build", "--cda", str(DATA / "cr-consultation.xml"), "--out", "IHE_XDM.ZIP",
            cwd=tmp_path)
    result = mssante("check", "IHE_XDM.ZIP", "--extract", "docs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "docs").iterdir()] == ["DOC0001.XML"]


def test_hostile_archive_exits_non_zero_with_every_reason(tmp_path: Path) -> None:
    (tmp_path / "EVIL.ZIP").write_bytes(zip_of([("../../evil.sh", b"x"), ("/etc/x", b"y")]))
    result = mssante("check", "EVIL.ZIP", "--json", cwd=tmp_path)
    assert result.returncode == 1
    errors = json.loads(result.stdout)["errors"]
    assert any("path traversal" in e for e in errors)
    assert any("absolute entry name" in e for e in errors)
    assert "path traversal" in result.stderr and "absolute entry name" in result.stderr
    plain = mssante("check", "EVIL.ZIP", cwd=tmp_path)
    assert plain.returncode == 1 and plain.stdout == ""
    assert plain.stderr.count("refused:") == len(errors)
    assert not (tmp_path.parent / "evil.sh").exists()


def test_missing_file_and_bad_cda(tmp_path: Path) -> None:
    missing = mssante("check", "NOPE.ZIP", "--json", cwd=tmp_path)
    assert missing.returncode == 1
    assert "NOPE.ZIP" in json.loads(missing.stdout)["errors"][0]
    (tmp_path / "bad.xml").write_text('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                                      "<x>&e;</x>")
    bad = mssante("build", "--cda", "bad.xml", "--out", "OUT.ZIP", cwd=tmp_path)
    assert bad.returncode == 1
    assert "DTD" in bad.stderr
    assert not (tmp_path / "OUT.ZIP").exists()
