"""`mssante xdm ...`: build and check IHE XDM archives (``IHE_XDM.ZIP``) of clinical
documents (content/xdm.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mssante.cli.common import fail
from mssante.content.cda import Code
from mssante.content.xdm import CLASS_CODES, SourceDocument, build, check
from mssante.content.xdmfiles import write_documents
from mssante.domain.ins import INS_OIDS
from mssante.errors import DocumentRefused
from mssante.files import write_atomic

app = typer.Typer(no_args_is_help=True)

MAX_INPUT = 64 * 1024 * 1024  # a file given on the command line, read whole


def _read(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_INPUT + 1)
    except OSError as exc:
        raise DocumentRefused([f"{what} {path}: {exc.strerror}"]) from None
    if len(data) > MAX_INPUT:
        raise DocumentRefused([f"{what} {path}: more than {MAX_INPUT} octets"])
    return data


@app.command("build")
def build_command(
        cda: Annotated[Path, typer.Option("--cda", help="The CDA R2 document (XML).")],
        out: Annotated[Path, typer.Option("--out", help="The archive to write, "
                                          "e.g. IHE_XDM.ZIP.")],
        pdf: Annotated[Path | None, typer.Option(
            "--pdf", help="Its PDF rendering, a document entry of its own.")] = None,
        source_id: Annotated[str | None, typer.Option(
            "--source-id", help="XDS sourceId, the sending system's OID (default: the "
                                "root of the CDA's id).")] = None,
        class_code: Annotated[str | None, typer.Option(
            "--class-code", help="XDS classCode (JDV_J06, e.g. 10), for a document type "
                                 "whose class is not known here.")] = None) -> None:
    """Build an IHE XDM archive from a CDA document (patient, author and codes taken
    from its header) and, beside it, its PDF rendering."""
    try:
        document = SourceDocument(
            cda=_read(cda, "CDA"), pdf=_read(pdf, "PDF") if pdf is not None else None,
            class_code=Code(class_code, CLASS_CODES, class_code) if class_code else None)
        archive = build([document], source_id=source_id)
        write_atomic(out, archive)
    except DocumentRefused as exc:
        for reason in exc.reasons:
            typer.echo(f"error: {reason}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        raise fail(f"{out}: {exc.strerror}") from None
    checked = check(archive)
    typer.echo(f"wrote {out} ({len(archive)} octets): "
               f"{len(checked.documents)} documents, patient {checked.patient_id}")


@app.command("check")
def check_command(
        file: Annotated[Path, typer.Argument(help="The archive, e.g. IHE_XDM.ZIP.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        extract: Annotated[Path | None, typer.Option(
            "--extract", help="Also write the checked documents into this folder.")] = None,
) -> None:
    """Check an IHE XDM archive as hostile input: exit 0 and describe it, or exit 1
    and print every reason it is refused (on stderr; with --json also as `errors`)."""
    try:
        checked = check(_read(file, "archive"))
        written = write_documents(checked, extract) if extract is not None else []
    except DocumentRefused as exc:
        for reason in exc.reasons:
            typer.echo(f"refused: {reason}", err=True)
        if as_json:
            typer.echo(json.dumps({"errors": list(exc.reasons)}, indent=2,
                                  ensure_ascii=False))
        raise typer.Exit(1) from None
    if as_json:
        result = checked.as_json()
        if extract is not None:
            result["extracted"] = [str(path) for path in written]
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    authority = INS_OIDS.get(checked.patient_oid, checked.patient_oid)
    typer.echo(f"patient: {checked.patient_ins or checked.patient_id} ({authority})")
    for document in checked.documents:
        code = f"  CDA {document.cda.code.code}" if document.cda else ""
        typer.echo(f"{document.name}  {document.mime_type}  {document.size} octets  "
                   f"sha1 {document.sha1}{code}")
    for warning in checked.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for path in written:
        typer.echo(f"wrote {path}")
