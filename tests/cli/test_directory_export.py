"""`mssante directory import|export` as the trust space's administrator types them."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mssante.cli import app
from mssante.directory.extract import COLUMNS, ExtractRow, read_extract, write_extract
from mssante.directory.generate import generate_rows
from mssante.directory.model import Mailbox, Practitioner, ResourceKind, TelecomInsert
from mssante.directory.store import open_directory
from mssante.domain.mailboxes import MailboxType

ROWS = list(generate_rows(400, seed=11))


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def write(path: Path, rows: list[ExtractRow], *extra_lines: str) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        write_extract(rows, fh)
        for line in extra_lines:
            fh.write(line + "\n")
    return path


def read(path: Path) -> list[ExtractRow]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(read_extract(fh))
    assert all(isinstance(row, ExtractRow) for row in rows)
    return rows  # type: ignore[return-value]


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "trust.toml"
    path.write_text('[trust_space]\ndata_dir = "ts"\n')
    return str(path)


def test_import_then_export_gives_the_rows_back(tmp_path: Path, config: str) -> None:
    extract = write(tmp_path / "day1.txt", ROWS)
    code, output = run("directory", "import", str(extract), "-c", config)
    assert code == 0, output
    assert "400 created, 0 changed, 0 removed, 0 unchanged; 0 lines rejected" in output
    out = tmp_path / "out" / "Extraction_Correspondance_MSSante.txt"
    out.parent.mkdir()
    code, output = run("directory", "export", "--out", str(out), "-c", config)
    assert code == 0, output
    assert f"wrote 400 mailboxes to {out}" in output.replace("\n", "")
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "|".join(COLUMNS) and lines[-1] == ""  # LF line ends
    assert read(out) == sorted(ROWS, key=lambda r: r.address)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no partial file left


def test_second_day_with_rejected_lines(tmp_path: Path, config: str) -> None:
    run("directory", "import", str(write(tmp_path / "day1.txt", ROWS)), "-c", config)
    changed = [replace(row, service="Accueil") for row in ROWS[:5]]
    day2 = write(tmp_path / "day2.txt", changed + ROWS[5:390],
                 "PER|bad@medecin.mssante.fr|too few", "|".join(["XYZ"] * 31))
    code, output = run("directory", "import", str(day2), "-c", config, "--accept-rejected")
    assert code == 0, output
    assert "0 created, 5 changed, 10 removed, 385 unchanged; 2 lines rejected" in output
    assert "line 392: expected 31 columns" in output
    assert "line 393: unknown mailbox type 'XYZ'" in output
    out = tmp_path / "export.txt"
    code, output = run("directory", "export", "-o", str(out), "-c", config)
    assert code == 0 and "wrote 390 mailboxes" in output, output
    assert read(out) == sorted(changed + ROWS[5:390], key=lambda r: r.address)


def test_export_leaves_out_the_liste_rouge(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'directory.sqlite3'}"
    person = next(r for r in ROWS if r.mailbox_type is MailboxType.PER)
    domain = "ch-test.mssante.fr"

    async def seed() -> None:
        store = await open_directory(url)
        try:
            await store.import_extract(ROWS[:50])
            await store.add_practitioner(Practitioner(person.pp_national_id, "8",
                                                      person.pp_id, family_name="Secret"))
            await store.patch_telecom(
                ResourceKind.PRACTITIONER, person.pp_national_id,
                [TelecomInsert(Mailbox(f"hidden@{domain}", MailboxType.PER,
                                       liste_rouge=True)),
                 TelecomInsert(Mailbox(f"shown@{domain}", MailboxType.PER))],
                publisher="CN=test", allowed_domains=frozenset({domain}))
        finally:
            await store.close()

    asyncio.run(seed())
    out = tmp_path / "export.txt"
    code, output = run("directory", "export", "--out", str(out), "--database", url)
    assert code == 0 and "wrote 51 mailboxes" in output, output
    addresses = [row.address for row in read(out)]
    assert f"shown@{domain}" in addresses and f"hidden@{domain}" not in addresses


def test_export_errors_leave_no_file(tmp_path: Path, config: str) -> None:
    code, output = run("directory", "export", "--out", str(tmp_path / "x.txt"))
    assert code == 1 and "--config" in output
    code, output = run("directory", "export", "--out", str(tmp_path / "none" / "x.txt"),
                       "-c", config)
    assert code == 1 and "cannot write" in output
    previous = tmp_path / "previous.txt"
    previous.write_text("old content")
    code, output = run("directory", "export", "--out", str(previous),
                       "--database", "mysql://nowhere/db")
    assert code == 1 and "unsupported database" in output
    assert previous.read_text() == "old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["previous.txt", "trust.toml", "ts"]


def test_import_refuses_what_is_not_an_extract(tmp_path: Path, config: str) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("Type de BAL|Adresse\nPER|x@y.mssante.fr\n", encoding="utf-8")
    code, output = run("directory", "import", str(bad), "-c", config)
    assert code == 1 and "Adresse" in output
    code, output = run("directory", "import", str(tmp_path / "none.txt"), "-c", config)
    assert code == 1 and "no such file" in output
    duplicate = write(tmp_path / "dup.txt", ROWS[:3])
    with duplicate.open("a", encoding="utf-8") as fh:  # read_extract rejects the line
        fh.write(duplicate.read_text(encoding="utf-8").splitlines()[1] + "\n")
    code, output = run("directory", "import", str(duplicate), "-c", config, "--accept-rejected")
    assert code == 0 and "3 created" in output and "1 lines rejected" in output
    assert "line 5: duplicate address" in output


def test_a_truncated_file_is_refused_and_removes_nothing(tmp_path: Path, config: str) -> None:
    """A download cut in the middle must not remove the half of the directory it lost."""
    full = write(tmp_path / "day1.txt", ROWS)
    assert run("directory", "import", str(full), "-c", config)[0] == 0
    data = full.read_bytes()
    truncated = tmp_path / "day2.txt"
    truncated.write_bytes(data[:len(data) // 2])  # cut in the middle of a line
    code, output = run("directory", "import", str(truncated), "-c", config)
    assert code == 1
    # refused either for its cut last line or for what it would remove
    assert ("lines rejected, nothing imported" in output
            or ("would remove 2" in output and "nothing imported" in output)), output
    out = tmp_path / "after.txt"
    assert run("directory", "export", "--out", str(out), "-c", config)[0] == 0
    assert len(read(out)) == len(ROWS)  # nothing removed
    # the administrator's explicit choice
    code, output = run("directory", "import", str(truncated), "-c", config, "--accept-rejected",
                       "--max-removed", "100")
    assert code == 0, output
    assert "removed" in output


def test_the_cli_uses_the_trust_spaces_directory_url(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.sqlite3"
    path = tmp_path / "trust.toml"
    path.write_text(f'[trust_space]\ndata_dir = "ts"\ndirectory_url = "sqlite:///{elsewhere}"\n')
    extract = write(tmp_path / "day1.txt", ROWS[:10])
    code, output = run("directory", "import", str(extract), "-c", str(path))
    assert code == 0, output
    assert elsewhere.exists()
    assert not (tmp_path / "ts" / "directory.sqlite3").exists()
