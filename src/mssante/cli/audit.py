"""``mssante operator audit``: the audit trail (store/audit.py, audit/).

- ``verify``: checks every entry, checkpoint and signature, and the last checkpoint
  witnessed outside the database; exits 1 naming the first thing that does not hold;
- ``list``: entries, optionally of one mailbox and since a time;
- ``checkpoint``: the latest signed checkpoint; ``key``: the verifier key to check it;
- ``prove``: an inclusion proof of one entry, or a consistency proof between two sizes
  (RFC 9162 §2.1.3, §2.1.4), checked before it is printed;
- ``purge``: export then empty the entries past retention now (the operator also does
  it every ``purge_interval``).
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mssante.audit.checkpoint import CheckpointError
from mssante.audit.merkle import (
    consistency_proof,
    inclusion_proof,
    root,
    verify_consistency,
    verify_inclusion,
)
from mssante.cli.common import console, fail, operator_config, print_json, run, with_store
from mssante.operator.audittrail import (
    WITNESS,
    audit_dir,
    export_path,
    last_witnessed,
    origin_of,
    verifier_of,
)
from mssante.store import Store
from mssante.store.audit import Verdict

app = typer.Typer(no_args_is_help=True, help="The audit trail.")

Config = Annotated[Path, typer.Option("--config", "-c", help="Operator configuration file.")]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


def _since(text: str) -> float:
    """An ISO 8601 time (UTC when no offset is given) or a number of seconds since 1970."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise fail(f"--since: not a time: {text!r} (ISO 8601, e.g. 2026-12-07T10:00:00Z)"
                   ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


@app.command("verify")
def verify(config: Config, json_out: Json = False) -> None:
    """Check the whole log: every entry against its leaf, every checkpoint's root and
    signature, and the last checkpoint witnessed outside the database."""
    settings = operator_config(config)
    verifier = verifier_of(settings.audit, settings.operator)
    origin = origin_of(settings.audit, settings.operator)
    witness = audit_dir(settings.operator) / WITNESS

    async def body(store: Store) -> tuple[Verdict, str]:
        verdict = await store.audit_verify(verifier, origin)
        return verdict, await _witnessed(store, witness) if verdict.ok else ""

    verdict, witnessed = run(with_store(config, body))
    problem = verdict.problem or witnessed
    result = {"ok": not problem, "entries": verdict.entries,
              "checkpoints": verdict.checkpoints, "pending": verdict.pending,
              "problem": problem}
    if json_out:
        print_json(result)
    elif not problem:
        console.print(f"audit trail verified: {result['entries']} entries, "
                      f"{result['checkpoints']} signed checkpoints, {result['pending']} "
                      "waiting for their checkpoint", highlight=False)
    if problem:
        raise fail(f"audit trail: {problem}")


async def _witnessed(store: Store, witness: Path) -> str:
    """The problem with the last checkpoint of the witness file, or ""."""
    try:
        note = last_witnessed(witness)
    except ValueError as exc:
        return str(exc)
    if note is None:
        return ""
    lines = note.split("\n")
    if len(lines) < 3 or not lines[1].isdigit():
        return f"the witness file {witness} ends with something that is not a checkpoint"
    held = await store.audit_checkpoint(int(lines[1]))
    if held is None:
        return (f"checkpoint {lines[1]}, witnessed in {witness}, is not in the database: "
                "the log was cut or rewritten")
    if held[1] != note:
        return f"checkpoint {lines[1]} differs from the one witnessed in {witness}"
    return ""


@app.command("list")
def list_entries(config: Config, json_out: Json = False,
                 mailbox: Annotated[str | None, typer.Option(help="Only this mailbox")] = None,
                 since: Annotated[str | None, typer.Option(
                     help="ISO 8601 time or epoch seconds")] = None,
                 limit: Annotated[int, typer.Option(help="At most this many")] = 1000) -> None:
    """Entries in time order: time, action, actor, mailbox, message_id, source, detail."""
    start = _since(since) if since is not None else None
    if limit <= 0:
        raise fail("--limit must be positive")
    found = run(with_store(config, lambda s: s.audit_entries(mailbox=mailbox, since=start,
                                                             limit=limit)))
    rows = [{**e.as_json(), "time": _iso(e.at)} for e in found]
    if json_out:
        print_json(rows)
        return
    table = Table("seq", "time", "action", "actor", "mailbox", "message-id", "source")
    for r in rows:
        table.add_row("" if r["seq"] is None else str(r["seq"]), str(r["time"]),
                      str(r["action"]), str(r["actor"]), str(r["mailbox"]),
                      str(r["message_id"]), str(r["source"]))
    console.print(table)


@app.command("checkpoint")
def checkpoint(config: Config) -> None:
    """The latest signed checkpoint (C2SP tlog-checkpoint)."""
    found = run(with_store(config, lambda s: s.audit_checkpoint()))
    if found is None:
        raise fail("no checkpoint yet: the operator signs one within a second of an entry")
    typer.echo(found[1], nl=False)


@app.command("key")
def key(config: Config) -> None:
    """The verifier key of the checkpoints: <origin>+<key id>+<Ed25519 public key>."""
    settings = operator_config(config)
    typer.echo(verifier_of(settings.audit, settings.operator).vkey())


@app.command("prove")
def prove(config: Config,
          inclusion: Annotated[int | None, typer.Option(help="The entry (its seq) to prove")
                               ] = None,
          consistency: Annotated[int | None, typer.Option(
              help="The older tree size to prove consistent with --size")] = None,
          size: Annotated[int | None, typer.Option(
              help="The tree size (a checkpoint's); default: the latest")] = None) -> None:
    """An inclusion or a consistency proof against a signed checkpoint, as JSON."""
    if (inclusion is None) == (consistency is None):
        raise fail("give --inclusion SEQ or --consistency SIZE")
    settings = operator_config(config)
    verifier = verifier_of(settings.audit, settings.operator)

    async def body(store: Store) -> dict[str, object]:
        held = await store.audit_checkpoint(size)
        if held is None:
            raise fail(f"no checkpoint of size {size}" if size else "no checkpoint yet")
        try:
            signed = verifier.open(held[1])
        except CheckpointError as exc:
            raise fail(f"checkpoint {held[0]}: {exc}") from None
        leaves = await store.audit_leaves(signed.size)
        b64 = [base64.b64encode(h).decode() for h in leaves]
        if inclusion is not None:
            if not 0 <= inclusion < signed.size:
                raise fail(f"entry {inclusion} is not in the tree of {signed.size} entries")
            path = inclusion_proof(leaves, inclusion)
            if not verify_inclusion(leaves[inclusion], inclusion, signed.size, path,
                                    signed.root):
                raise fail(f"entry {inclusion} does not prove against checkpoint "
                           f"{signed.size}: run verify")
            return {"entry": inclusion, "leaf": b64[inclusion], "tree_size": signed.size,
                    "root": base64.b64encode(signed.root).decode(),
                    "path": [base64.b64encode(h).decode() for h in path],
                    "checkpoint": held[1]}
        assert consistency is not None
        if not 0 < consistency <= signed.size:
            raise fail(f"no consistency proof from {consistency} to {signed.size} entries")
        old_root = root(leaves[:consistency])
        proof = consistency_proof(leaves, consistency)
        if not verify_consistency(consistency, signed.size, old_root, signed.root, proof):
            raise fail("the log does not prove consistent: run verify")
        return {"old_size": consistency, "old_root": base64.b64encode(old_root).decode(),
                "tree_size": signed.size, "root": base64.b64encode(signed.root).decode(),
                "proof": [base64.b64encode(h).decode() for h in proof],
                "checkpoint": held[1]}

    print_json(run(with_store(config, body)))


@app.command("purge")
def purge(config: Config) -> None:
    """Export, then empty, the entries older than the retention (``[audit]
    retention_days``), now; the purge is itself an entry."""
    settings = operator_config(config)
    before = time.time() - settings.audit.retention_days * 86400
    count, path = run(with_store(config, lambda s: s.audit_purge(
        before=before, export_dir=export_path(settings.audit, settings.operator),
        actor="cli")))
    console.print(f"{count} entries exported to {path} and purged" if count
                  else "no entry is past retention", highlight=False)
