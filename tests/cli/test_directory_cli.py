"""`mssante directory generate|check` as an operator of the trust space types them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mssante.cli import app
from mssante.directory.extract import COLUMNS, read_extract


def test_generate_then_check(tmp_path: Path) -> None:
    out = tmp_path / "Extraction_Correspondance_MSSante.txt"
    result = CliRunner().invoke(app, ["directory", "generate", "--mailboxes", "3000",
                                      "--seed", "7", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 3000 mailboxes" in result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "|".join(COLUMNS) and len(lines) == 3001
    assert sum(1 for _ in read_extract(lines)) == 3000
    # a damaged copy: the rejected lines come back with their numbers and reasons
    damaged = tmp_path / "damaged.txt"
    damaged.write_text("\n".join([*lines, lines[5], "PER|a@b.mssante.fr|too few"]) + "\n",
                       encoding="utf-8")
    report = tmp_path / "rejected.jsonl"
    result = CliRunner().invoke(app, ["directory", "check", str(damaged), "--json",
                                      "--report", str(report)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["accepted"] == 3000 and data["rejected_count"] == 2
    first, second = data["rejected"]
    assert first["line"] == 3002 and "duplicate address" in first["reason"]
    assert second["line"] == 3003 and "31 columns" in second["reason"]
    assert len(report.read_text(encoding="utf-8").splitlines()) == 2


def test_check_refuses_a_file_that_is_not_an_extract(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("Type de BAL|Adresse\nPER|x@y.mssante.fr\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["directory", "check", str(bad)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Adresse" in result.output
    result = CliRunner().invoke(app, ["directory", "check", str(tmp_path / "none.txt")])
    assert result.exit_code == 1 and "no such file" in result.output


def test_import_then_search(tmp_path: Path) -> None:
    from mssante.directory.generate import generate_rows

    rows = list(generate_rows(500, seed=3))
    extract = tmp_path / "extract.txt"
    with extract.open("w", encoding="utf-8", newline="") as fh:
        from mssante.directory.extract import write_extract

        write_extract(rows, fh)
    config = tmp_path / "trust.toml"
    config.write_text('[trust_space]\ndata_dir = "ts"\n')
    result = CliRunner().invoke(app, ["directory", "import", str(extract), "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "500 created, 0 changed, 0 removed, 0 unchanged; 0 lines rejected" in result.output
    assert (tmp_path / "ts" / "directory.sqlite3").exists()
    person = next(r for r in rows if r.family_name and r.routing_line)
    city = person.routing_line.split(" ", 1)[1]
    result = CliRunner().invoke(app, ["directory", "search", f"{person.family_name} {city}",
                                      "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    assert person.address in [hit["address"] for hit in json.loads(result.output)]
    # the same file again changes nothing
    result = CliRunner().invoke(app, ["directory", "import", str(extract), "-c", str(config)])
    assert "0 created, 0 changed, 0 removed, 500 unchanged" in result.output
    result = CliRunner().invoke(app, ["directory", "search", "x"])
    assert result.exit_code == 1 and "--config" in result.output
