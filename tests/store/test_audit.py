"""The audit trail in the store, on SQLite and PostgreSQL: entries written with the
actions they record, sealed into a Merkle tree with signed checkpoints, and every kind
of tampering named by ``verify``; purge exports before it empties, and the tree still
verifies after."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.store.conftest import Database

from mssante.audit.checkpoint import Signer
from mssante.audit.events import ACTOR, AuditEvent, canonical
from mssante.audit.merkle import inclusion_proof, leaf_hash, verify_inclusion
from mssante.domain.mailboxes import PersonKind
from mssante.store import Store
from mssante.store.models import MessageSummary

ORIGIN = "ch-xyz.mssante.fr/audit"
DR = "alice.martin@ch-xyz.mssante.fr"


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer.load_or_create(ORIGIN, tmp_path / "key.pem")


async def deliver(store: Store, n: int) -> None:
    for i in range(n):
        message_id = f"<m{i}@ch-xyz>"
        await store.accept_message(
            f"Message-ID: {message_id}\r\n\r\nx\r\n".encode(), envelope_from="a@b.fr",
            local=[DR], remote=[], summary=MessageSummary(message_id, "CR", None, None),
            audit_events=[AuditEvent("reception", "CN=mta", "a@b.fr", message_id),
                          AuditEvent("delivery", "CN=mta", DR, message_id)])


async def sealed(store: Store, signer: Signer) -> None:
    while await store.audit_seal(signer, ORIGIN) is not None:
        pass


async def test_actions_leave_entries_that_verify(mailboxes: Store, signer: Signer) -> None:
    store = mailboxes
    ACTOR.set("cli:test")
    await store.create_person("accueil", PersonKind.STAFF, "Accueil")
    await deliver(store, 5)
    await store.audit_record([AuditEvent("read", "dr", DR, "<m1@ch-xyz>", "IMAP 127.0.0.1")])
    pending = await store.audit_verify(signer.verifier, ORIGIN)
    assert pending.ok and pending.pending > 0
    await sealed(store, signer)
    verdict = await store.audit_verify(signer.verifier, ORIGIN)
    assert verdict.ok and verdict.pending == 0 and verdict.entries >= 12
    listed = await store.audit_entries(mailbox=DR)
    assert [e.event.action for e in listed] == ["admin.mailbox.create", *["delivery"] * 5, "read"]
    actions = [e.event.action for e in await store.audit_entries()]
    assert "admin.person.create" in actions and "admin.mailbox.create" in actions
    created = next(e for e in await store.audit_entries()
                   if e.event.action == "admin.person.create" and "accueil" in e.event.detail)
    assert created.event.actor == "cli:test"
    # an inclusion proof of any entry against the signed checkpoint
    held = await store.audit_checkpoint()
    assert held is not None
    checkpoint = signer.verifier.open(held[1])
    leaves = await store.audit_leaves(checkpoint.size)
    assert verify_inclusion(leaves[3], 3, checkpoint.size, inclusion_proof(leaves, 3),
                            checkpoint.root)


async def test_an_altered_entry_is_named(mailboxes: Store, signer: Signer) -> None:
    store = mailboxes
    await deliver(store, 4)
    await sealed(store, signer)
    seq = (await store.audit_entries(mailbox=DR))[2].seq
    async with store.tx.write() as conn:
        await conn.execute(text("UPDATE audit_entries SET mailbox = 'someone@else.fr' "
                                "WHERE seq = :s"), {"s": seq})
    verdict = await store.audit_verify(signer.verifier, ORIGIN)
    assert not verdict.ok
    assert verdict.problem.startswith(f"entry {seq} (delivery at ")
    assert "was altered" in verdict.problem


async def test_an_entry_rewritten_with_its_leaf_breaks_the_signed_root(
        mailboxes: Store, signer: Signer) -> None:
    store = mailboxes
    await deliver(store, 3)
    await sealed(store, signer)
    first = (await store.audit_checkpoint())
    assert first is not None
    await deliver(store, 3)
    await sealed(store, signer)
    [victim] = [e for e in await store.audit_entries(mailbox=DR)
                if e.event.message_id == "<m1@ch-xyz>" and e.seq is not None
                and e.seq >= first[0]]
    event = AuditEvent(victim.event.action, victim.event.actor, "someone@else.fr",
                       victim.event.message_id, victim.event.source, victim.event.detail)
    async with store.tx.write() as conn:
        await conn.execute(text("UPDATE audit_entries SET mailbox = 'someone@else.fr', "
                                "leaf = :l WHERE seq = :s"),
                           {"l": leaf_hash(canonical(victim.seq or 0, victim.at, event)),
                            "s": victim.seq})
    verdict = await store.audit_verify(signer.verifier, ORIGIN)
    assert not verdict.ok
    assert verdict.problem.startswith(f"entries {first[0]} to ")
    assert "no longer gives the root signed at checkpoint" in verdict.problem


async def test_a_removed_entry_and_a_cut_log_are_named(mailboxes: Store,
                                                        signer: Signer) -> None:
    store = mailboxes
    await deliver(store, 4)
    await sealed(store, signer)
    total = (await store.audit_verify(signer.verifier, ORIGIN)).entries
    async with store.tx.write() as conn:
        await conn.execute(text("DELETE FROM audit_entries WHERE seq = 3"))
    assert (await store.audit_verify(signer.verifier, ORIGIN)).problem == (
        "entry 3 is missing (the next is 4)")
    async with store.tx.write() as conn:
        await conn.execute(text("DELETE FROM audit_entries WHERE seq >= 3"))
    problem = (await store.audit_verify(signer.verifier, ORIGIN)).problem
    assert problem == (f"checkpoint {total} names entries the log does not have (it holds "
                       "3): entries were removed")


async def test_a_checkpoint_signed_by_another_key_is_refused(mailboxes: Store, signer: Signer,
                                                             tmp_path: Path) -> None:
    store = mailboxes
    await deliver(store, 2)
    await store.audit_seal(Signer.load_or_create(ORIGIN, tmp_path / "intruder.pem"), ORIGIN)
    problem = (await store.audit_verify(signer.verifier, ORIGIN)).problem
    assert problem.startswith("checkpoint ") and f"not signed by {ORIGIN}" in problem


async def test_purge_exports_then_empties_and_the_tree_still_verifies(
        mailboxes: Store, signer: Signer, tmp_path: Path) -> None:
    store = mailboxes
    await deliver(store, 5)
    await sealed(store, signer)
    before = (await store.audit_entries())[-1].at + 1
    count, path = await store.audit_purge(before=before, export_dir=tmp_path / "exports",
                                          actor="retention")
    assert path is not None and count >= 10
    exported = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(exported) == count
    assert {e["message_id"] for e in exported} >= {f"<m{i}@ch-xyz>" for i in range(5)}
    remaining = await store.audit_entries()
    assert all(e.purged and not e.event.mailbox for e in remaining[:count])
    assert remaining[-1].event.action == "audit.purge"
    assert f"{count} entries" in remaining[-1].event.detail
    await sealed(store, signer)
    assert (await store.audit_verify(signer.verifier, ORIGIN)).ok
    again = await store.audit_purge(before=remaining[-1].at, export_dir=tmp_path / "exports",
                                    actor="retention")
    assert again == (0, None)  # what was purged is not exported again


async def test_two_sequencers_at_once_give_one_tree(database: Database, mailboxes: Store,
                                                    signer: Signer) -> None:
    """Two processes' sealers on one database take turns: no place is given twice."""
    other = await database.open()
    await deliver(mailboxes, 30)
    await asyncio.gather(*(s.audit_seal(signer, ORIGIN) for s in (mailboxes, other) * 3))
    await sealed(mailboxes, signer)
    verdict = await mailboxes.audit_verify(signer.verifier, ORIGIN)
    assert verdict.ok and verdict.pending == 0
