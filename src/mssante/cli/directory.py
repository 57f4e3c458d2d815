"""`mssante directory ...`: the national extract (generate, check), the directory
database (import, export, search)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from mssante.cli.common import console, fail, run
from mssante.config import load_trust_space_config
from mssante.directory.extract import (
    COLUMNS,
    SEPARATOR,
    ExtractFormatError,
    ExtractRow,
    RejectedLine,
    format_row,
    read_extract,
    write_extract,
)
from mssante.directory.generate import generate_rows
from mssante.directory.service import AUTOCOMPLETE_MAX, DirectoryService
from mssante.directory.store import ImportReport, open_directory
from mssante.errors import Conflict, MSSanteError
from mssante.files import fsync_dir, private_dir, write_atomic

app = typer.Typer(no_args_is_help=True)


def _progress() -> Progress:
    return Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                    transient=False)


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Extract file to write.")],
    mailboxes: Annotated[int, typer.Option(help="Number of mailboxes (rows).")] = 540_000,
    seed: Annotated[int, typer.Option(help="Same seed, same extract.")] = 0,
) -> None:
    """Write a realistic Extraction_Correspondance_MSSante (demos and benchmarks)."""
    if mailboxes < 0:
        raise fail("--mailboxes must be zero or more")
    tmp = out.with_name(f".{out.name}.partial")
    with _progress() as progress, tmp.open("w", encoding="utf-8", newline="") as fh:
        task = progress.add_task("generating", total=mailboxes)

        def rows() -> Iterator[ExtractRow]:
            for n, row in enumerate(generate_rows(mailboxes, seed=seed), start=1):
                if n % 5000 == 0:
                    progress.update(task, completed=n)
                yield row

        written = write_extract(rows(), fh)
        progress.update(task, completed=written)
    tmp.replace(out)
    console.print(f"wrote {written} mailboxes to {out}")


@app.command()
def check(
    extract: Annotated[Path, typer.Argument(help="An Extraction_Correspondance_MSSante file.")],
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
    report: Annotated[Path | None, typer.Option(
        help="Also write every rejected line (number, reason, text) to this file.")] = None,
) -> None:
    """Read an extract and report the rejected lines with their number and reason."""
    accepted = 0
    rejected: list[RejectedLine] = []
    try:
        with extract.open(encoding="utf-8", newline="") as fh:
            for item in read_extract(fh):
                if isinstance(item, RejectedLine):
                    rejected.append(item)
                else:
                    accepted += 1
    except FileNotFoundError:
        raise fail(f"no such file: {extract}") from None
    except UnicodeDecodeError as exc:
        raise fail(f"{extract} is not UTF-8: {exc}") from None
    except ExtractFormatError as exc:
        raise fail(f"{extract}: {exc}") from None
    lines = [{"line": r.line_number, "reason": r.reason, "text": r.text} for r in rejected]
    if report is not None:
        write_atomic(report, "".join(json.dumps(x, ensure_ascii=False) + "\n"
                                     for x in lines).encode("utf-8"))
    if json_out:
        typer.echo(json.dumps({"accepted": accepted, "rejected": lines[:1000],
                               "rejected_count": len(lines)}, ensure_ascii=False, indent=2))
        return
    console.print(f"{accepted} mailboxes accepted, {len(rejected)} lines rejected")
    for r in rejected[:20]:
        console.print(f"  line {r.line_number}: {r.reason}", highlight=False)
    if len(rejected) > 20:
        console.print(f"  … {len(rejected) - 20} more" + (f" (all in {report})" if report else ""))


def _database(config: Path | None, database: str | None) -> str:
    """The directory database: ``--database URL``, else the one of the trust space named
    by ``--config`` (its ``directory_url``, or ``directory.sqlite3`` in its data
    directory)."""
    if database:
        return database
    if config is None:
        raise fail("give --config (a trust space configuration) or --database URL")
    try:
        settings = load_trust_space_config(config).trust_space
    except MSSanteError as exc:
        raise fail(str(exc)) from None
    if settings.directory_url:  # the database the trust space serves
        return settings.directory_url
    private_dir(settings.data_dir)
    return f"sqlite+aiosqlite:///{settings.data_dir / 'directory.sqlite3'}"


ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c",
                                                help="Trust space configuration file.")]
DatabaseOpt = Annotated[str | None, typer.Option("--database",
                                                 help="SQLAlchemy URL of the directory.")]


class _Rejected(Exception):
    """The file has rejected lines and --accept-rejected was not given."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} lines rejected")
        self.count = count


def _data_lines(path: Path) -> int:
    """The number of lines after the header (0.1 s for a national file): the total of
    the progress bar."""
    count = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            count += chunk.count(b"\n")
    return max(count - 1, 0)


@app.command("import")
def import_(
    extract: Annotated[Path, typer.Argument(help="An Extraction_Correspondance_MSSante file.")],
    config: ConfigOpt = None, database: DatabaseOpt = None,
    accept_rejected: Annotated[bool, typer.Option(
        "--accept-rejected",
        help="Import even if some lines are rejected (their addresses are left as they are)."
    )] = False,
    max_removed: Annotated[float, typer.Option(
        "--max-removed", min=0.0, max=100.0,
        help="Refuse a file that would remove more than this percentage of the imported "
             "mailboxes (a truncated file); 100 to allow any.")] = 5.0,
) -> None:
    """Apply an extract as the directory's new content (created, changed, removed).

    A file with rejected lines is refused unless --accept-rejected, and so is one that
    would remove more than --max-removed percent of the imported mailboxes: a
    truncated or damaged file must not remove the mailboxes it lost. With
    --accept-rejected, the address of a rejected line (when it can be read) is not
    removed. Either refusal changes nothing (one transaction)."""
    url = _database(config, database)
    rejected: list[RejectedLine] = []
    kept: set[str] = set()  # the addresses of rejected lines: neither removed nor changed

    def rows(fh: TextIO) -> Iterator[ExtractRow]:
        for item in read_extract(fh):
            if isinstance(item, RejectedLine):
                rejected.append(item)
                fields = item.text.split("|")
                if len(fields) > 1 and "@" in fields[1]:
                    kept.add(fields[1].strip().lower())
            else:
                yield item
        if rejected and not accept_rejected:
            # Raised inside the import's transaction, before any removal: rolled back.
            raise _Rejected(len(rejected))

    async def body() -> ImportReport:
        store = await open_directory(url)
        try:
            total = _data_lines(extract)
            with _progress() as progress, extract.open(encoding="utf-8", newline="") as fh:
                task = progress.add_task("importing", total=total)
                return await store.import_extract(
                    rows(fh), progress=lambda n: progress.update(task, completed=n),
                    max_removed=None if max_removed >= 100 else max_removed / 100, keep=kept)
        finally:
            await store.close()

    try:
        report = run(body())
    except _Rejected as exc:
        for r in rejected[:20]:
            console.print(f"  line {r.line_number}: {r.reason}", highlight=False, markup=False)
        raise fail(f"{extract}: {exc.count} lines rejected, nothing imported (mssante "
                   "directory check lists them; --accept-rejected imports the rest)") from None
    except FileNotFoundError:
        raise fail(f"no such file: {extract}") from None
    except (ExtractFormatError, UnicodeDecodeError, ValueError, Conflict) as exc:
        raise fail(f"{extract}: {exc}") from None
    console.print(f"{report.created} created, {report.changed} changed, "
                  f"{report.removed} removed, {report.unchanged} unchanged; "
                  f"{len(rejected)} lines rejected")
    for r in rejected[:20]:
        console.print(f"  line {r.line_number}: {r.reason}", highlight=False)


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Extract file to write.")],
    config: ConfigOpt = None, database: DatabaseOpt = None,
) -> None:
    """Write the directory as an Extraction_Correspondance_MSSante: every mailbox not on
    the liste rouge, by address. The file appears complete or not at all."""
    url = _database(config, database)
    tmp = out.with_name(f".{out.name}.partial")

    async def body() -> int:
        store = await open_directory(url)
        try:
            with _progress() as progress, tmp.open("w", encoding="utf-8", newline="") as fh:
                task = progress.add_task("exporting", total=None)
                fh.write(SEPARATOR.join(COLUMNS) + "\n")
                written = 0
                async for row in store.export_rows():
                    fh.write(format_row(row) + "\n")
                    written += 1
                    if written % 5000 == 0:
                        progress.update(task, completed=written)
                progress.update(task, completed=written)
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            await store.close()
        return written

    try:
        written = run(body())
        tmp.replace(out)
    except (OSError, ValueError) as exc:  # ValueError: a value the format cannot hold
        tmp.unlink(missing_ok=True)
        raise fail(f"cannot write {out}: {exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(out.parent)
    console.print(f"wrote {written} mailboxes to {out}")


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="Free text, e.g. 'dupont cardio lyon'.")],
    config: ConfigOpt = None, database: DatabaseOpt = None,
    limit: Annotated[int, typer.Option(help="At most this many answers (1-50).")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Find professionals and their MSSanté addresses, best matches first.

    The same search as the trust space's autocomplete: the index is built from the
    directory database for this one query (a few seconds at national scale)."""
    if not 1 <= limit <= AUTOCOMPLETE_MAX:
        raise fail(f"--limit must be between 1 and {AUTOCOMPLETE_MAX}")
    url = _database(config, database)

    async def body() -> list[dict[str, object]]:
        store = await open_directory(url)
        service = DirectoryService(store, extract_dir=Path("."))
        try:
            return [s.as_json() for s in await service.autocomplete(text, limit)]
        finally:
            await service.close()
            await store.close()

    found = run(body())
    if json_out:
        typer.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    if not found:
        console.print("no match")
    for hit in found:
        console.print(f"{hit['address']}  {hit['name']}  {hit['profession']} "
                      f"{hit['specialty']}  {hit['organisation']}  {hit['city']}",
                      highlight=False, markup=False)
