"""IMAP folders: names, create/delete/rename, UIDs and MODSEQs, flags, expunge,
copy and move, bodies, the migration from 0002, change notifications; on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection

from mssante.database import create_engine, database_url
from mssante.domain.mailboxes import MailboxType, Rules
from mssante.errors import Conflict, NotFound, PolicyViolation
from mssante.store import MessageSummary, OutboundRecipient, Store
from mssante.store.changes import CHANNEL, RECONNECT_DELAY
from mssante.store.folders import canonical_flags, normalise_name
from mssante.store.migrate import alembic_config, head_revision
from mssante.store.models import Accepted, Folder, FolderChanges, MessageData

if TYPE_CHECKING:
    from tests.store.conftest import Database, RowCounter

DOMAIN = "ch-xyz.mssante.fr"
PER = f"alice.martin@{DOMAIN}"
ORG = f"cardiologie@{DOMAIN}"
SENDER = "bruno.petit@medecin.mssante.fr"
BODY = (b"From: Dr Bruno Petit <bruno.petit@medecin.mssante.fr>\r\n"
        b"Subject: CR consultation\r\nMessage-ID: <cr-1@medecin.mssante.fr>\r\n"
        b"Date: Tue, 4 Mar 2025 10:00:00 +0100\r\n\r\nCompte rendu.\r\n")
SUMMARY = MessageSummary(message_id="<cr-1@medecin.mssante.fr>", subject="CR consultation",
                         from_header="Dr Bruno Petit <bruno.petit@medecin.mssante.fr>",
                         date_header="Tue, 4 Mar 2025 10:00:00 +0100")
SPECIAL = [("Archive", "\\Archive"), ("Drafts", "\\Drafts"), ("Sent", "\\Sent"),
           ("Trash", "\\Trash")]
WAKE_TIMEOUT = 5.0  # seconds a notification may take between two stores


def body(n: int) -> bytes:
    """A distinct message (so a distinct body) per ``n``."""
    return (b"From: Dr Bruno Petit <bruno.petit@medecin.mssante.fr>\r\n"
            b"Subject: message %d\r\nMessage-ID: <m%d@medecin.mssante.fr>\r\n\r\n"
            b"Text %d.\r\n" % (n, n, n))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def deliver(store: Store, n: int, *, local: tuple[str, ...] = (PER,),
                  now: float | None = None) -> Accepted:
    return await store.accept_message(body(n), envelope_from=SENDER, local=list(local),
                                      remote=[], summary=SUMMARY, now=now)


async def folder(store: Store, name: str, address: str = PER) -> Folder:
    found = await store.folders.get(address, name)
    assert found is not None, name
    return found


async def uids_of(store: Store, folder_id: int) -> list[int]:
    state = await store.folders.state(folder_id)
    assert state is not None
    return state.uids


async def has_body(store: Store, sha256: str) -> bool:
    try:
        await store.get_body(sha256)
    except NotFound:
        return False
    return True


# ------------------------------------------------------------------ names

def test_names_are_normalised() -> None:
    assert normalise_name("inbox") == "INBOX"
    assert normalise_name("InBoX") == "INBOX"
    assert normalise_name("inbox/x") == "INBOX/x"
    assert normalise_name("Inbox/Projets/2026") == "INBOX/Projets/2026"
    assert normalise_name("INBOXES") == "INBOXES"  # only the level INBOX
    assert normalise_name("Projets/inbox") == "Projets/inbox"  # only the first level
    assert normalise_name("Projets") == "Projets"  # other names keep their case
    assert normalise_name("Boîte d'envoi") == "Boîte d'envoi"
    assert normalise_name("/".join(["a"] * 16)) == "/".join(["a"] * 16)
    assert normalise_name("x" * 255) == "x" * 255


@pytest.mark.parametrize("name", [
    "", "/", "/a", "a/", "a//b", "*", "a*b", "a%", "%", "a\x00b", "a\tb", "a\r\nb",
    "a\x1fb", "a\x7fb", "x" * 256, "/".join(["a"] * 17)])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        normalise_name(name)


def test_flags_are_canonical() -> None:
    assert canonical_flags(["\\seen", "$Label", "\\Recent", "\\SEEN", "$label",
                            "\\answered", ""]) == "$Label \\Answered \\Seen"
    assert canonical_flags([]) == ""
    assert canonical_flags(["\\recent"]) == ""


@pytest.mark.parametrize("name", ["", "a//b", "*", "a\x00b", "Projets/"])
async def test_bad_names_in_the_store(mailboxes: Store, name: str) -> None:
    with pytest.raises(ValueError):
        await mailboxes.folders.create(PER, name)
    assert await mailboxes.folders.get(PER, name) is None
    with pytest.raises(ValueError):
        await mailboxes.folders.delete(PER, name)
    with pytest.raises(ValueError):
        await mailboxes.folders.rename(PER, "Archive", name)
    assert [f.name for f in await mailboxes.folders.all(PER)] == [
        "INBOX", "Archive", "Drafts", "Sent", "Trash"]


# --------------------------------------------------------------- folders

async def test_a_new_mailbox_has_inbox_and_the_special_folders(mailboxes: Store) -> None:
    found = await mailboxes.folders.all(PER)
    assert [(f.name, f.special_use) for f in found] == [("INBOX", None), *SPECIAL]
    for f in found:
        assert (f.mailbox, f.uidnext, f.highestmodseq, f.subscribed) == (PER, 1, 1, True)
        assert await mailboxes.folders.by_id(f.id) == f
        assert await mailboxes.folders.get(PER.upper(), f.name) == f
    assert len({f.uidvalidity for f in found}) == 1
    assert 0 < found[0].uidvalidity <= time.time()
    assert len({f.id for f in found}) == 5
    org = await mailboxes.folders.all(ORG)
    assert [f.name for f in org] == ["INBOX", "Archive", "Drafts", "Sent", "Trash"]
    assert {f.id for f in org}.isdisjoint(f.id for f in found)
    assert await mailboxes.folders.get(PER, "inbox") == found[0]
    assert await mailboxes.folders.get(PER, "Projets") is None
    assert await mailboxes.folders.all(f"ghost@{DOMAIN}") == []
    for f in found:
        assert await uids_of(mailboxes, f.id) == []


async def test_create_and_delete(mailboxes: Store) -> None:
    inbox = await folder(mailboxes, "INBOX")
    projets = await mailboxes.folders.create(PER.upper(), "Projets")
    assert (projets.mailbox, projets.name, projets.special_use, projets.uidnext,
            projets.highestmodseq, projets.subscribed) == (PER, "Projets", None, 1, 1, True)
    assert projets.uidvalidity > inbox.uidvalidity
    assert await mailboxes.folders.by_id(projets.id) == projets
    assert await mailboxes.folders.get(PER, "Projets") == projets
    child = await mailboxes.folders.create(PER, "Projets/2026")
    under_inbox = await mailboxes.folders.create(PER, "inbox/Sub")
    assert under_inbox.name == "INBOX/Sub"
    assert await mailboxes.folders.get(PER, "Inbox/Sub") == under_inbox
    same_but_lower = await mailboxes.folders.create(PER, "sent")  # only INBOX ignores case
    assert same_but_lower.special_use is None
    assert [f.name for f in await mailboxes.folders.all(PER)] == [
        "INBOX", "Archive", "Drafts", "INBOX/Sub", "Projets", "Projets/2026", "Sent",
        "Trash", "sent"]

    with pytest.raises(Conflict):
        await mailboxes.folders.create(PER, "Projets")
    with pytest.raises(Conflict):
        await mailboxes.folders.create(PER, "inbox")
    with pytest.raises(NotFound):
        await mailboxes.folders.create(f"ghost@{DOMAIN}", "Projets")
    with pytest.raises(ValueError):
        await mailboxes.folders.create(PER, "Spam", special_use="\\Spam")

    await mailboxes.folders.delete(PER, "Projets")  # its child stays (RFC 9051 §6.3.4)
    assert await mailboxes.folders.get(PER, "Projets") is None
    assert await mailboxes.folders.by_id(projets.id) is None
    assert await mailboxes.folders.get(PER, "Projets/2026") == child
    with pytest.raises(NotFound):
        await mailboxes.folders.delete(PER, "Projets")
    with pytest.raises(NotFound):
        await mailboxes.folders.delete(f"ghost@{DOMAIN}", "Projets/2026")
    for name in ("INBOX", "inbox", "Inbox"):
        with pytest.raises(PolicyViolation):
            await mailboxes.folders.delete(PER, name)
    await mailboxes.folders.delete(PER, "Trash")  # special folders may go
    assert [f.name for f in await mailboxes.folders.all(PER)] == [
        "INBOX", "Archive", "Drafts", "INBOX/Sub", "Projets/2026", "Sent", "sent"]
    assert len(await mailboxes.folders.all(ORG)) == 5  # the other mailbox is untouched


async def test_create_and_rename_make_the_missing_levels(mailboxes: Store) -> None:
    """RFC 9051 §6.3.4 and §6.3.6: the server SHOULD create the superior levels."""
    deep = await mailboxes.folders.create(PER, "Patients/2026/Dupont")
    made = {f.name: f for f in await mailboxes.folders.all(PER)}
    assert {"Patients", "Patients/2026", "Patients/2026/Dupont"} <= set(made)
    assert made["Patients"].uidvalidity < made["Patients/2026"].uidvalidity < deep.uidvalidity
    assert made["Patients"].subscribed and made["Patients"].special_use is None
    with pytest.raises(Conflict):  # refused whole: no level is left behind
        await mailboxes.folders.create(PER, "Archives/Sent", special_use="\\Sent")
    assert await mailboxes.folders.get(PER, "Archives") is None
    await mailboxes.folders.create(PER, "Patients/2026/Martin")  # the levels exist: reused
    await mailboxes.folders.rename(PER, "Patients/2026", "Anciens/Patients/2026")
    names = [f.name for f in await mailboxes.folders.all(PER)]
    assert [n for n in names if n.startswith(("Anciens", "Patients"))] == [
        "Anciens", "Anciens/Patients", "Anciens/Patients/2026", "Anciens/Patients/2026/Dupont",
        "Anciens/Patients/2026/Martin", "Patients"]


async def test_a_person_subscribes_to_a_shared_folder_for_themselves(
        mailboxes: Store, count_rows: RowCounter) -> None:
    def subscribed(found: list[Folder]) -> dict[str, bool]:
        return {f.name: f.subscribed for f in found}

    await mailboxes.folders.subscribe(ORG, "Trash", False, viewer="sec")
    await mailboxes.folders.subscribe(ORG, "Archive", False)  # the mailbox's own
    mine = subscribed(await mailboxes.folders.all(ORG, viewer="sec"))
    assert (mine["Trash"], mine["Archive"], mine["INBOX"]) == (False, False, True)
    theirs = subscribed(await mailboxes.folders.all(ORG, viewer="dr"))
    assert (theirs["Trash"], theirs["Archive"]) == (True, False)  # the default
    assert subscribed(await mailboxes.folders.all(ORG))["Trash"]
    await mailboxes.folders.subscribe(ORG, "Archive", True, viewer="sec")  # overrides
    await asyncio.gather(*(mailboxes.folders.subscribe(ORG, "Archive", True, viewer="sec")
                           for _ in range(4)))  # at the same moment: none fails
    assert subscribed(await mailboxes.folders.all(ORG, viewer="sec"))["Archive"]
    assert await count_rows("folder_subscriptions") == 2
    # RFC 3501 §6.3.6: a name that is no folder may be subscribed, for oneself
    await mailboxes.folders.subscribe(ORG, "Nowhere", True, viewer="sec")
    assert await mailboxes.folders.subscribed_names(ORG, viewer="sec") == ["Nowhere"]
    assert await mailboxes.folders.subscribed_names(ORG, viewer="dr") == []
    with pytest.raises(NotFound):
        await mailboxes.folders.subscribe(ORG, "Trash", True, viewer="nobody")
    # RFC 3501 §6.3.4: DELETE leaves the subscriptions, each person's choice kept
    await mailboxes.folders.delete(ORG, "Trash")
    assert await count_rows("folder_subscriptions") == 1
    assert await mailboxes.folders.subscribed_names(ORG, viewer="sec") == ["Nowhere"]
    assert await mailboxes.folders.subscribed_names(ORG, viewer="dr") == ["Trash"]
    assert await mailboxes.folders.subscribed_names(ORG) == ["Trash"]
    again = await mailboxes.folders.create(ORG, "Trash", subscribed=False)
    assert again.subscribed  # the mailbox's own subscription, taken back
    assert subscribed(await mailboxes.folders.all(ORG, viewer="sec"))["Trash"] is False
    assert await count_rows("subscriptions") == 1  # "Nowhere" only
    await mailboxes.folders.subscribe(ORG, "Nowhere", False, viewer="sec")
    with pytest.raises(NotFound):  # nothing left to unsubscribe
        await mailboxes.folders.subscribe(ORG, "Nowhere", False, viewer="sec")
    await mailboxes.folders.subscribe(ORG, "Nowhere", True, viewer="sec")
    await mailboxes.delete_person("sec")  # a person's choices go with them
    assert await count_rows("folder_subscriptions") == 0
    assert await count_rows("subscriptions") == 0


async def test_a_folder_created_again_gets_a_greater_uidvalidity(mailboxes: Store) -> None:
    first = await mailboxes.folders.create(PER, "Projets")
    assert await mailboxes.folders.append(first.id, body(1)) == (first.uidvalidity, 1)
    assert await mailboxes.folders.append(first.id, body(2)) == (first.uidvalidity, 2)
    await mailboxes.folders.delete(PER, "Projets")
    assert not await has_body(mailboxes, sha(body(1)))

    second = await mailboxes.folders.create(PER, "Projets")
    assert second.uidvalidity > first.uidvalidity
    assert (second.uidnext, second.highestmodseq) == (1, 1)
    assert await mailboxes.folders.append(second.id, body(3)) == (second.uidvalidity, 1)
    assert await uids_of(mailboxes, second.id) == [1]
    assert await mailboxes.folders.expunged_since(second.id, 0) == []

    # a special folder too, and each time again greater
    trash = await folder(mailboxes, "Trash")
    await mailboxes.folders.delete(PER, "Trash")
    again = await mailboxes.folders.create(PER, "Trash", special_use="\\Trash")
    assert again.uidvalidity > second.uidvalidity > trash.uidvalidity
    assert again.special_use == "\\Trash"


async def test_a_deleted_folder_id_is_not_given_to_a_new_folder(mailboxes: Store) -> None:
    """Sessions and the change hub know a folder by its id: a folder created after a
    delete must not take the id of the deleted one, or a session that had it selected
    would silently see the new folder's messages."""
    gone = await mailboxes.folders.create(PER, "Projets")
    await mailboxes.folders.delete(PER, "Projets")
    new = await mailboxes.folders.create(PER, "Autre")
    assert new.id != gone.id
    assert await mailboxes.folders.changes(gone.id, 0) is None
    assert await mailboxes.folders.state(gone.id) is None


async def test_one_folder_per_special_use(mailboxes: Store) -> None:
    with pytest.raises(Conflict, match=r"\\Trash"):
        await mailboxes.folders.create(PER, "Corbeille", special_use="\\Trash")
    assert await mailboxes.folders.get(PER, "Corbeille") is None
    junk = await mailboxes.folders.create(PER, "Indésirables", special_use="\\Junk")
    assert junk.special_use == "\\Junk"
    with pytest.raises(Conflict):
        await mailboxes.folders.create(PER, "Spam", special_use="\\Junk")
    assert (await mailboxes.folders.create(ORG, "Spam", special_use="\\Junk")
            ).special_use == "\\Junk"  # per mailbox
    await mailboxes.folders.delete(PER, "Trash")
    corbeille = await mailboxes.folders.create(PER, "Corbeille", special_use="\\Trash")
    assert corbeille.special_use == "\\Trash"
    uses = [f.special_use for f in await mailboxes.folders.all(PER) if f.special_use]
    assert sorted(uses) == sorted(["\\Archive", "\\Drafts", "\\Sent", "\\Trash", "\\Junk"])


async def test_the_special_folder_is_found_by_its_use_or_made(mailboxes: Store) -> None:
    """The webmail's Drafts and Trash: the folder with the use whatever its name, else
    a folder of that name, else one created with the use (RFC 6154), once."""
    drafts = await folder(mailboxes, "Drafts")
    assert await mailboxes.folders.special(PER, "\\Drafts", "Drafts") == drafts
    await mailboxes.folders.rename(PER, "Drafts", "Brouillons")
    renamed = await mailboxes.folders.special(PER, "\\Drafts", "Drafts")
    assert (renamed.name, renamed.special_use) == ("Brouillons", "\\Drafts")
    await mailboxes.folders.delete(PER, "Brouillons")
    made = await asyncio.gather(*(mailboxes.folders.special(PER, "\\Drafts", "Drafts")
                                  for _ in range(3)))
    assert {(f.id, f.name, f.special_use) for f in made} == {
        (made[0].id, "Drafts", "\\Drafts")}
    await mailboxes.folders.delete(PER, "Trash")
    plain = await mailboxes.folders.create(PER, "Trash")
    assert await mailboxes.folders.special(PER, "\\Trash", "Trash") == plain
    with pytest.raises(NotFound):
        await mailboxes.folders.special(f"ghost@{DOMAIN}", "\\Trash", "Trash")
    with pytest.raises(ValueError):
        await mailboxes.folders.special(PER, "\\Nothing", "Trash")


async def test_flags_of_some_messages(mailboxes: Store) -> None:
    inbox = await folder(mailboxes, "INBOX")
    for n in range(3):
        await deliver(mailboxes, n)
    await mailboxes.folders.store_flags(inbox.id, [2], "+", ["\\Flagged", "\\Seen"])
    assert await mailboxes.folders.flags(inbox.id, [2, 3, 99]) == {
        2: "\\Flagged \\Seen", 3: ""}
    assert await mailboxes.folders.flags(inbox.id, []) == {}


async def test_rename_takes_the_children_along(mailboxes: Store) -> None:
    projets = await mailboxes.folders.create(PER, "Projets")
    child = await mailboxes.folders.create(PER, "Projets/2026")
    grandchild = await mailboxes.folders.create(PER, "Projets/2026/T1")
    for name in ("ProjetsX", "ProjetsX/a", "projets", "projets/old", "a_b", "a_b/c",
                 "axb", "axb/c"):
        await mailboxes.folders.create(PER, name)
    await mailboxes.folders.append(child.id, body(1), flags=["\\Seen"])

    await mailboxes.folders.rename(PER, "Projets", "Travail")
    renamed = await folder(mailboxes, "Travail")
    # RFC 9051 §2.3.1.1: a renamed folder takes a UIDVALIDITY no name had before
    assert renamed.id == projets.id and renamed.uidvalidity > max(
        projets.uidvalidity, child.uidvalidity)
    moved = await folder(mailboxes, "Travail/2026")
    assert (moved.id, moved.uidvalidity, moved.uidnext) == (child.id, renamed.uidvalidity, 2)
    assert (await folder(mailboxes, "Travail/2026/T1")).id == grandchild.id
    [message] = await mailboxes.list_messages(PER, "Travail/2026")
    assert message.uid == 1 and message.flags == frozenset({"\\Seen"})

    await mailboxes.folders.rename(PER, "a_b", "z")  # "_" is no wildcard
    names = [f.name for f in await mailboxes.folders.all(PER)]
    assert names == ["INBOX", "Archive", "Drafts", "ProjetsX", "ProjetsX/a", "Sent",
                     "Trash", "Travail", "Travail/2026", "Travail/2026/T1", "axb", "axb/c",
                     "projets", "projets/old", "z", "z/c"]

    await mailboxes.folders.rename(PER, "Travail/2026", "Archive/2026")  # under another
    assert (await folder(mailboxes, "Archive/2026")).id == child.id
    assert (await folder(mailboxes, "Archive/2026/T1")).id == grandchild.id
    assert await mailboxes.folders.get(PER, "Travail/2026") is None


async def test_rename_onto_the_names_it_frees(mailboxes: Store) -> None:
    """Renaming "a/b" to "a": "a/b/b" becomes "a/b" and "a/b/b/c" becomes "a/b/c",
    names the folders being renamed hold until they are renamed themselves."""
    ids = {}
    for name in ("a/b", "a/b/b", "a/b/c", "a/b/b/c"):
        ids[name] = (await mailboxes.folders.create(PER, name)).id
    await mailboxes.folders.delete(PER, "a")  # created with a/b; its children stay
    await mailboxes.folders.rename(PER, "a/b", "a")
    assert {name: (await folder(mailboxes, new)).id for name, new in (
        ("a/b", "a"), ("a/b/c", "a/c"), ("a/b/b", "a/b"), ("a/b/b/c", "a/b/c"))} == ids
    await mailboxes.folders.rename(PER, "a", "z/a")  # and back, growing
    await mailboxes.folders.rename(PER, "z/a", "a/b")  # creating z, then a
    assert {name: (await folder(mailboxes, name)).id for name in ids} == ids
    assert {f.name for f in await mailboxes.folders.all(PER)} >= {"a", "z"}
    assert len(await mailboxes.folders.all(PER)) == 11


async def test_rename_refusals(mailboxes: Store) -> None:
    await mailboxes.folders.create(PER, "Travail")
    with pytest.raises(PolicyViolation):
        await mailboxes.folders.rename(PER, "Travail", "Travail/sub")
    for name in ("INBOX", "inbox"):
        with pytest.raises(PolicyViolation):
            await mailboxes.folders.rename(PER, "Travail", name)
    with pytest.raises(NotFound):
        await mailboxes.folders.rename(PER, "Nulle part", "Ailleurs")
    with pytest.raises(Conflict):
        await mailboxes.folders.rename(PER, "Travail", "Sent")
    with pytest.raises(NotFound):
        await mailboxes.folders.rename(f"ghost@{DOMAIN}", "Travail", "Ailleurs")
    assert [f.name for f in await mailboxes.folders.all(PER)] == [
        "INBOX", "Archive", "Drafts", "Sent", "Trash", "Travail"]


async def test_renaming_inbox_moves_its_messages_to_a_new_folder(mailboxes: Store) -> None:
    for n in range(3):
        await deliver(mailboxes, n)
    inbox = await folder(mailboxes, "INBOX")
    await mailboxes.folders.store_flags(inbox.id, [2], "+", ["\\Seen"])
    sub = await mailboxes.folders.create(PER, "INBOX/Sub")
    before = await folder(mailboxes, "INBOX")
    assert (before.uidnext, before.highestmodseq) == (4, 5)

    await mailboxes.folders.rename(PER, "inbox", "Ancienne boîte")
    after = await folder(mailboxes, "INBOX")
    assert (after.id, after.uidvalidity, after.uidnext) == (inbox.id, inbox.uidvalidity, 4)
    assert after.highestmodseq == 6
    assert await uids_of(mailboxes, inbox.id) == []
    assert await mailboxes.folders.changes(inbox.id, before.highestmodseq) == FolderChanges(
        after, [], [1, 2, 3])
    assert await mailboxes.folders.expunged_since(inbox.id, 0) == [1, 2, 3]

    new = await folder(mailboxes, "Ancienne boîte")
    assert new.id != inbox.id and new.special_use is None and new.subscribed
    assert new.uidvalidity > inbox.uidvalidity
    assert (new.uidnext, new.highestmodseq) == (4, 6)
    state = await mailboxes.folders.state(new.id)
    assert state is not None
    assert (state.uids, state.flags, state.modseqs) == ([1, 2, 3], ["", "\\Seen", ""],
                                                         [6, 6, 6])
    assert await mailboxes.folders.expunged_since(new.id, 0) == []
    for n in range(3):
        assert await has_body(mailboxes, sha(body(n)))
    # INBOX's children stay where they are (RFC 9051 §6.3.6)
    assert await mailboxes.folders.get(PER, "INBOX/Sub") == sub
    assert await mailboxes.folders.get(PER, "Ancienne boîte/Sub") is None

    accepted = await deliver(mailboxes, 9)  # delivery continues in INBOX, no UID reused
    assert accepted.message_uids == {PER: 4}
    assert [m.uid for m in await mailboxes.list_messages(PER)] == [4]
    assert [m.uid for m in await mailboxes.list_messages(PER, "Ancienne boîte")] == [1, 2, 3]

    with pytest.raises(Conflict):  # a name in use: nothing moves
        await mailboxes.folders.rename(PER, "INBOX", "Archive")
    assert await uids_of(mailboxes, inbox.id) == [4]
    assert await uids_of(mailboxes, (await folder(mailboxes, "Archive")).id) == []

    await mailboxes.folders.rename(PER, "INBOX", "Vide")  # nothing to expunge
    assert await uids_of(mailboxes, (await folder(mailboxes, "Vide")).id) == [4]
    assert await mailboxes.folders.expunged_since(inbox.id, 0) == [1, 2, 3, 4]


async def test_subscribe(mailboxes: Store) -> None:
    await mailboxes.folders.subscribe(PER.upper(), "Sent", False)
    assert not (await folder(mailboxes, "Sent")).subscribed
    assert (await folder(mailboxes, "Sent", ORG)).subscribed
    await mailboxes.folders.subscribe(PER, "inbox", False)
    assert not (await folder(mailboxes, "INBOX")).subscribed
    await mailboxes.folders.subscribe(PER, "Sent", True)
    assert (await folder(mailboxes, "Sent")).subscribed
    assert [f.name for f in await mailboxes.folders.all(PER) if not f.subscribed] == ["INBOX"]
    # RFC 3501 §6.3.6: a name that is no folder may be subscribed, and unsubscribed
    await mailboxes.folders.subscribe(PER, "Nulle part", True)
    assert await mailboxes.folders.subscribed_names(PER) == ["Nulle part"]
    await mailboxes.folders.subscribe(PER, "Nulle part", False)
    assert await mailboxes.folders.subscribed_names(PER) == []
    with pytest.raises(NotFound):  # nothing to unsubscribe
        await mailboxes.folders.subscribe(PER, "Nulle part", False)
    with pytest.raises(NotFound):
        await mailboxes.folders.subscribe(f"ghost@{DOMAIN}", "Sent", True)
    with pytest.raises(ValueError):
        await mailboxes.folders.subscribe(PER, "a//b", True)


# -------------------------------------------------------------- delivery

async def test_delivery_to_inbox_takes_ascending_uids_and_modseqs(mailboxes: Store) -> None:
    inbox = await folder(mailboxes, "INBOX")
    org_inbox = await folder(mailboxes, "INBOX", ORG)
    for n in range(3):
        accepted = await deliver(mailboxes, n)
        assert accepted.message_uids == {PER: n + 1}
        assert accepted.folder_ids == (inbox.id,)
    state = await mailboxes.folders.state(inbox.id)
    assert state is not None
    assert (state.uids, state.flags, state.modseqs) == ([1, 2, 3], ["", "", ""], [2, 3, 4])
    assert (state.folder.uidnext, state.folder.highestmodseq) == (4, 4)
    changes = await mailboxes.folders.changes(inbox.id, 2)
    assert changes is not None
    assert (changes.changed, changes.expunged) == ([(2, "", 3), (3, "", 4)], [])
    assert await mailboxes.folders.changes(inbox.id, 4) == FolderChanges(state.folder, [], [])
    for name in ("Sent", "Drafts", "Trash", "Archive"):
        other = await folder(mailboxes, name)
        assert (other.uidnext, other.highestmodseq) == (1, 1)

    both = await deliver(mailboxes, 3, local=(PER, ORG.upper()))
    assert both.message_uids == {PER: 4, ORG: 1}
    assert set(both.folder_ids) == {inbox.id, org_inbox.id}
    assert (await folder(mailboxes, "INBOX")).highestmodseq == 5
    assert (await folder(mailboxes, "INBOX", ORG)).highestmodseq == 2

    # concurrent deliveries (one group commit or several): distinct, ascending UIDs
    results = await asyncio.gather(*(deliver(mailboxes, 10 + n) for n in range(6)))
    assert sorted(r.message_uids[PER] for r in results) == [5, 6, 7, 8, 9, 10]
    state = await mailboxes.folders.state(inbox.id)
    assert state is not None and state.uids == list(range(1, 11))
    assert state.modseqs == sorted(state.modseqs) and state.modseqs[4] > 5
    assert state.folder.highestmodseq == state.modseqs[-1]
    assert state.folder.uidnext == 11


async def test_the_sender_keeps_a_seen_copy_in_sent(mailboxes: Store) -> None:
    sent = await folder(mailboxes, "Sent")
    org_inbox = await folder(mailboxes, "INBOX", ORG)
    accepted = await mailboxes.accept_message(
        BODY, envelope_from=PER, local=[ORG], summary=SUMMARY, sent=PER.upper(),
        remote=[OutboundRecipient("carol@medecin.mssante.fr")], now=1000.0)
    assert accepted.message_uids == {ORG: 1}
    assert set(accepted.folder_ids) == {sent.id, org_inbox.id}
    [copy] = await mailboxes.list_messages(PER, "Sent")
    assert copy.uid == 1 and copy.flags == frozenset({"\\Seen"})
    assert copy.body_sha256 == accepted.sha256 and copy.received_at == 1000.0
    assert copy.envelope_from == PER and copy.subject == SUMMARY.subject
    state = await mailboxes.folders.state(sent.id)
    assert state is not None
    assert (state.uids, state.flags, state.modseqs) == ([1], ["\\Seen"], [2])
    assert await mailboxes.list_messages(PER) == []  # not in the sender's INBOX
    [received] = await mailboxes.list_messages(ORG)
    assert received.flags == frozenset()
    assert await mailboxes.list_messages(ORG, "Sent") == []

    again = await mailboxes.accept_message(BODY, envelope_from=PER, local=[], summary=SUMMARY,
                                           remote=[OutboundRecipient("c@medecin.fr")],
                                           sent=PER)
    assert again.message_uids == {}
    assert [m.uid for m in await mailboxes.list_messages(PER, "Sent")] == [1, 2]

    # the Sent folder renamed keeps its special use, and the copies
    await mailboxes.folders.rename(PER, "Sent", "Envoyés")
    await mailboxes.accept_message(BODY, envelope_from=PER, local=[ORG], remote=[],
                                   summary=SUMMARY, sent=PER)
    assert [m.uid for m in await mailboxes.list_messages(PER, "Envoyés")] == [1, 2, 3]


async def test_the_copy_kept_at_sending_is_found_for_ten_minutes(mailboxes: Store) -> None:
    """submitted_copy: what a client's APPEND to Sent is matched against."""
    sent = await folder(mailboxes, "Sent")
    assert await mailboxes.folders.submitted_copy(sent.id, BODY) is None
    await mailboxes.accept_message(BODY, envelope_from=PER, local=[ORG], remote=[],
                                   summary=SUMMARY, sent=PER, now=1000.0)
    client_copy = b"User-Agent: Thunderbird\r\n" + BODY  # other headers may differ
    found = mailboxes.folders.submitted_copy
    assert await found(sent.id, client_copy, now=1000.0 + 300) == 1
    assert await found(sent.id, client_copy, now=1000.0 + 3600) is None  # too old
    # the client's Bcc is nowhere else: that copy is kept
    assert await found(sent.id, b"bcc: archives@ch-xyz.mssante.fr\r\n" + BODY,
                       now=1000.0) is None
    assert await found(sent.id, BODY.replace(b"CR consultation", b"CR (bis)"),
                       now=1000.0) is None
    assert await found(sent.id, BODY.replace(b"Message-ID", b"X-Old-ID"), now=1000.0) is None
    # a message a client appended is never matched: only what submission kept
    drafts = await folder(mailboxes, "Drafts")
    await mailboxes.folders.append(drafts.id, BODY)
    assert await found(drafts.id, BODY) is None
    await mailboxes.folders.store_flags(sent.id, [1], "+", ["\\Deleted"])
    assert await found(sent.id, BODY, now=1000.0) is None


async def test_sending_to_oneself_gives_both_copies(mailboxes: Store,
                                                    count_rows: RowCounter) -> None:
    accepted = await mailboxes.accept_message(BODY, envelope_from=PER, local=[PER],
                                              remote=[], summary=SUMMARY, sent=PER)
    assert accepted.message_uids == {PER: 1}
    [received] = await mailboxes.list_messages(PER)
    [sent] = await mailboxes.list_messages(PER, "Sent")
    assert received.flags == frozenset() and sent.flags == frozenset({"\\Seen"})
    assert received.uid == sent.uid == 1
    assert received.body_sha256 == sent.body_sha256 == accepted.sha256
    assert await count_rows("bodies") == 1
    assert await mailboxes.count_messages(PER) == 2


async def test_no_sent_copy_without_a_sent_folder(mailboxes: Store) -> None:
    await mailboxes.folders.delete(PER, "Sent")
    accepted = await mailboxes.accept_message(BODY, envelope_from=PER, local=[ORG], remote=[],
                                              summary=SUMMARY, sent=PER)
    assert accepted.message_uids == {ORG: 1}
    assert accepted.folder_ids == ((await folder(mailboxes, "INBOX", ORG)).id,)
    assert await mailboxes.count_messages(PER) == 0
    assert await mailboxes.count_messages() == 1
    # a folder given the special use later gets the copies
    kept = await mailboxes.folders.create(PER, "Envoyés", special_use="\\Sent")
    await mailboxes.accept_message(BODY, envelope_from=PER, local=[ORG], remote=[],
                                   summary=SUMMARY, sent=PER)
    assert await uids_of(mailboxes, kept.id) == [1]


# ------------------------------------------------------- append, flags

async def test_append_keeps_flags_and_internaldate(mailboxes: Store) -> None:
    archive = await folder(mailboxes, "Archive")
    result = await mailboxes.folders.append(
        archive.id, BODY, flags=["\\seen", "$Label", "\\Recent", "\\SEEN", "$label",
                                 "\\answered"], internaldate=1_700_000_000.5)
    assert result == (archive.uidvalidity, 1)
    before = time.time()
    assert await mailboxes.folders.append(archive.id, body(2)) == (archive.uidvalidity, 2)
    state = await mailboxes.folders.state(archive.id)
    assert state is not None
    assert state.uids == [1, 2] and state.modseqs == [2, 3]
    assert state.flags == ["$Label \\Answered \\Seen", ""]
    assert (state.folder.uidnext, state.folder.highestmodseq) == (3, 3)
    first, second = await mailboxes.folders.message_data(archive.id, [2, 1, 99])
    assert first == MessageData(1, sha(BODY), len(BODY), 1_700_000_000.5,
                                "<cr-1@medecin.mssante.fr>")
    assert (second.uid, second.body_sha256, second.size) == (2, sha(body(2)), len(body(2)))
    assert before - 1 <= second.internaldate <= time.time() + 1
    assert await mailboxes.folders.summaries(archive.id, [1]) == {
        1: ("CR consultation", "Dr Bruno Petit <bruno.petit@medecin.mssante.fr>",
            "<cr-1@medecin.mssante.fr>", "Tue, 4 Mar 2025 10:00:00 +0100")}
    assert await mailboxes.folders.bodies([sha(BODY), sha(body(2)), "0" * 64]) == {
        sha(BODY): BODY, sha(body(2)): body(2)}
    # a body read in pieces (IMAP streams large ones): the pieces make the body
    pieces = [await mailboxes.folders.body_piece(sha(BODY), start, 7)
              for start in range(0, len(BODY) + 7, 7)]
    assert b"".join(p for p in pieces if p is not None) == BODY and pieces[-1] == b""
    assert await mailboxes.folders.body_piece(sha(BODY), 3, 1 << 30) == BODY[3:]
    assert await mailboxes.folders.body_piece("0" * 64, 0, 10) is None
    [listed, _] = await mailboxes.list_messages(PER, "Archive")
    assert listed.received_at == 1_700_000_000.5 and listed.envelope_from == ""
    assert listed.flags == frozenset({"$Label", "\\Answered", "\\Seen"})

    await mailboxes.folders.delete(PER, "Archive")
    with pytest.raises(NotFound):
        await mailboxes.folders.append(archive.id, BODY)


async def test_bulk_append(mailboxes: Store, count_rows: RowCounter) -> None:
    archive = await folder(mailboxes, "Archive")
    await mailboxes.folders.append(archive.id, body(0))
    items = [(body(n), "\\seen $x \\Recent" if n % 2 else "", 1_600_000_000.0 + n)
             for n in range(1, 1002)]  # more than one transaction of a thousand
    uids = await mailboxes.folders.bulk_append(PER, "Archive", items)
    assert uids == list(range(2, 1003))
    state = await mailboxes.folders.state(archive.id)
    assert state is not None
    assert state.uids == list(range(1, 1003))
    assert state.flags[1:3] == ["$x \\Seen", ""]
    assert state.modseqs[1] == state.modseqs[1000] == 3 and state.modseqs[1001] == 4
    assert (state.folder.uidnext, state.folder.highestmodseq) == (1003, 4)
    data = await mailboxes.folders.message_data(archive.id, [2, 1002])
    assert [(d.uid, d.internaldate, d.body_sha256) for d in data] == [
        (2, 1_600_000_001.0, sha(body(1))), (1002, 1_600_001_001.0, sha(body(1001)))]
    with pytest.raises(NotFound):
        await mailboxes.folders.bulk_append(PER, "Nulle part", items[:1])

    # STORE and EXPUNGE over more UIDs than one IN list holds
    changed, modified = await mailboxes.folders.store_flags(archive.id, uids, "+",
                                                            ["\\Deleted"])
    assert [uid for uid, _, _ in changed] == uids and modified == []
    assert {modseq for _, _, modseq in changed} == {5}
    assert changed[0][1] == "$x \\Deleted \\Seen" and changed[1][1] == "\\Deleted"
    assert await mailboxes.folders.expunge(archive.id) == uids
    assert await uids_of(mailboxes, archive.id) == [1]
    assert await mailboxes.folders.expunged_since(archive.id, 0) == uids
    assert await count_rows("bodies") == 1


async def test_store_flags_modes(mailboxes: Store) -> None:
    for n in range(3):
        await deliver(mailboxes, n)  # MODSEQs 2, 3, 4
    inbox = await folder(mailboxes, "INBOX")
    flags = mailboxes.folders.store_flags

    assert await flags(inbox.id, [1, 2, 99], "+", ["\\seen", "$Label"]) == (
        [(1, "$Label \\Seen", 5), (2, "$Label \\Seen", 5)], [])
    assert (await folder(mailboxes, "INBOX")).highestmodseq == 5
    assert await flags(inbox.id, [1, 2], "+", ["\\Seen"]) == ([], [])  # nothing new
    assert await flags(inbox.id, [99], "+", ["\\Seen"]) == ([], [])
    assert (await folder(mailboxes, "INBOX")).highestmodseq == 5

    assert await flags(inbox.id, [1, 2, 3], "-", ["$label"]) == (
        [(1, "\\Seen", 6), (2, "\\Seen", 6)], [])  # 3 had no $Label: unchanged
    assert await flags(inbox.id, [3], "-", ["\\Seen"]) == ([], [])
    assert await flags(inbox.id, [1, 3], "", ["\\Flagged", "\\Recent"]) == (
        [(1, "\\Flagged", 7), (3, "\\Flagged", 7)], [])
    assert await flags(inbox.id, [1], "", ["\\flagged"]) == ([], [])
    assert (await folder(mailboxes, "INBOX")).highestmodseq == 7
    state = await mailboxes.folders.state(inbox.id)
    assert state is not None
    assert (state.uids, state.flags, state.modseqs) == (
        [1, 2, 3], ["\\Flagged", "\\Seen", "\\Flagged"], [7, 6, 7])

    assert await flags(inbox.id, [2], "", []) == ([(2, "", 8)], [])  # replace by nothing
    assert await flags(inbox.id, [], "+", ["\\Seen"]) == ([], [])


async def test_unchangedsince_refuses_messages_modified_since(mailboxes: Store) -> None:
    """RFC 7162 §3.1.3: a message whose MODSEQ is greater than UNCHANGEDSINCE is not
    changed and its UID is returned (MODIFIED); the others are changed."""
    for n in range(3):
        await deliver(mailboxes, n)  # MODSEQs 2, 3, 4
    inbox = await folder(mailboxes, "INBOX")
    flags = mailboxes.folders.store_flags
    assert await flags(inbox.id, [1, 2, 3], "+", ["\\Answered"], unchanged_since=3) == (
        [(1, "\\Answered", 5), (2, "\\Answered", 5)], [3])
    assert await flags(inbox.id, [1, 3], "+", ["\\Seen"], unchanged_since=4) == (
        [(3, "\\Seen", 6)], [1])
    # only refusals: nothing changes, no MODSEQ taken
    assert await flags(inbox.id, [1, 2, 3], "-", ["\\Answered"], unchanged_since=4) == (
        [], [1, 2, 3])
    assert (await folder(mailboxes, "INBOX")).highestmodseq == 6
    # equal to the message's MODSEQ passes
    assert await flags(inbox.id, [3], "", ["\\Flagged"], unchanged_since=6) == (
        [(3, "\\Flagged", 7)], [])
    assert await flags(inbox.id, [1, 2], "+", ["\\Flagged"], unchanged_since=0) == (
        [], [1, 2])
    state = await mailboxes.folders.state(inbox.id)
    assert state is not None
    assert state.flags == ["\\Answered", "\\Answered", "\\Flagged"]
    assert state.modseqs == [5, 5, 7]


# --------------------------------------------------------------- expunge

async def test_expunge_removes_deleted_messages_only(mailboxes: Store) -> None:
    for n in range(1, 6):
        await deliver(mailboxes, n)  # UIDs 1-5, MODSEQs 2-6
    inbox = await folder(mailboxes, "INBOX")
    await mailboxes.folders.store_flags(inbox.id, [1, 2, 4, 5], "+", ["\\Deleted"])  # 7
    await mailboxes.folders.store_flags(inbox.id, [3], "+", ["$Deleted", "\\Seen"])  # 8

    assert await mailboxes.folders.expunge(inbox.id, [2, 3, 4, 99]) == [2, 4]  # UID EXPUNGE
    assert await uids_of(mailboxes, inbox.id) == [1, 3, 5]
    assert (await folder(mailboxes, "INBOX")).highestmodseq == 9
    assert await mailboxes.folders.changes(inbox.id, 8) == FolderChanges(
        await folder(mailboxes, "INBOX"), [], [2, 4])

    assert await mailboxes.folders.expunge(inbox.id) == [1, 5]
    assert await mailboxes.folders.expunge(inbox.id) == []  # nothing: no MODSEQ taken
    assert await mailboxes.folders.expunge(inbox.id, []) == []
    after = await folder(mailboxes, "INBOX")
    assert after.highestmodseq == 10 and after.uidnext == 6
    state = await mailboxes.folders.state(inbox.id)
    assert state is not None
    assert (state.uids, state.flags) == ([3], ["$Deleted \\Seen"])

    assert await mailboxes.folders.changes(inbox.id, 8) == FolderChanges(after, [], [1, 2, 4, 5])
    assert await mailboxes.folders.changes(inbox.id, 9) == FolderChanges(after, [], [1, 5])
    assert await mailboxes.folders.expunged_since(inbox.id, 0) == [1, 2, 4, 5]
    assert await mailboxes.folders.expunged_since(inbox.id, 9) == [1, 5]
    assert await mailboxes.folders.expunged_since(inbox.id, 10) == []
    assert await mailboxes.folders.expunged_since(inbox.id, 0, [1, 2, 3]) == [1, 2]
    for n, kept in ((1, False), (2, False), (3, True), (4, False), (5, False)):
        assert await has_body(mailboxes, sha(body(n))) is kept
    assert await mailboxes.folders.message_data(inbox.id, [1, 2, 3]) == [
        MessageData(3, sha(body(3)), len(body(3)),
                    (await mailboxes.list_messages(PER))[0].received_at,
                    "<cr-1@medecin.mssante.fr>")]
    assert await mailboxes.count_messages(PER) == 1

    archive = await folder(mailboxes, "Archive")
    await mailboxes.folders.delete(PER, "Archive")
    with pytest.raises(NotFound):
        await mailboxes.folders.expunge(archive.id)


# ------------------------------------------------------------ copy, move

async def test_copy_keeps_flags_and_internaldate(mailboxes: Store) -> None:
    for n in range(3):
        await deliver(mailboxes, n, now=1000.0 + n)
    inbox = await folder(mailboxes, "INBOX")
    await mailboxes.folders.store_flags(inbox.id, [1], "+", ["\\Seen"])
    await mailboxes.folders.store_flags(inbox.id, [3], "+", ["\\Flagged", "$Urgent"])
    archive = await folder(mailboxes, "Archive")
    await mailboxes.folders.append(archive.id, BODY)  # the copies come after it
    source_before = await mailboxes.folders.state(inbox.id)

    assert await mailboxes.folders.copy(inbox.id, [3, 1, 42], archive.id) == (
        archive.uidvalidity, [1, 3], [2, 3])
    state = await mailboxes.folders.state(archive.id)
    assert state is not None
    assert state.uids == [1, 2, 3]
    assert state.flags == ["", "\\Seen", "$Urgent \\Flagged"]
    assert state.modseqs == [2, 3, 3]
    assert (state.folder.uidnext, state.folder.highestmodseq) == (4, 3)
    assert [(d.uid, d.body_sha256, d.internaldate) for d in
            await mailboxes.folders.message_data(archive.id, [2, 3])] == [
        (2, sha(body(0)), 1000.0), (3, sha(body(2)), 1002.0)]
    copies = await mailboxes.list_messages(PER, "Archive")
    assert [(m.envelope_from, m.subject) for m in copies[1:]] == [(SENDER, SUMMARY.subject)] * 2
    assert await mailboxes.folders.state(inbox.id) == source_before  # the source stays

    assert await mailboxes.folders.copy(inbox.id, [42], archive.id) == (
        archive.uidvalidity, [], [])
    assert (await folder(mailboxes, "Archive")).highestmodseq == 3
    assert await mailboxes.folders.copy(inbox.id, [2], inbox.id) == (  # into itself
        inbox.uidvalidity, [2], [4])
    with pytest.raises(NotFound):
        await mailboxes.folders.copy(inbox.id, [1], archive.id + 1000)
    await mailboxes.folders.delete(PER, "Archive")
    with pytest.raises(NotFound):
        await mailboxes.folders.copy(archive.id, [1], inbox.id)


async def test_move_removes_from_the_source(mailboxes: Store) -> None:
    for n in range(3):
        await deliver(mailboxes, n)
    inbox = await folder(mailboxes, "INBOX")
    await mailboxes.folders.store_flags(inbox.id, [2], "+", ["\\Seen"])
    before = await folder(mailboxes, "INBOX")
    trash = await folder(mailboxes, "Trash")

    assert await mailboxes.folders.copy(inbox.id, [1, 2], trash.id, move=True) == (
        trash.uidvalidity, [1, 2], [1, 2])
    assert await uids_of(mailboxes, inbox.id) == [3]
    after = await folder(mailboxes, "INBOX")
    assert after.highestmodseq == before.highestmodseq + 1
    assert await mailboxes.folders.changes(inbox.id, before.highestmodseq) == FolderChanges(
        after, [], [1, 2])
    assert await mailboxes.folders.expunged_since(inbox.id, 0) == [1, 2]
    state = await mailboxes.folders.state(trash.id)
    assert state is not None
    assert (state.uids, state.flags, state.modseqs) == ([1, 2], ["", "\\Seen"], [2, 2])
    for n in range(3):
        assert await mailboxes.get_body(sha(body(n))) == body(n)  # the bodies stay

    # RFC 6851 §3.1: a MOVE into the same folder is a COPY then an expunge: a new UID
    assert await mailboxes.folders.copy(trash.id, [1], trash.id, move=True) == (
        trash.uidvalidity, [1], [3])
    assert await uids_of(mailboxes, trash.id) == [2, 3]
    assert await mailboxes.folders.copy(inbox.id, [1], trash.id, move=True) == (
        trash.uidvalidity, [], [])  # gone already
    # emptying the trash drops the bodies
    await mailboxes.folders.store_flags(trash.id, [2, 3], "+", ["\\Deleted"])
    assert await mailboxes.folders.expunge(trash.id) == [2, 3]
    assert not await has_body(mailboxes, sha(body(0)))
    assert not await has_body(mailboxes, sha(body(1)))
    assert await has_body(mailboxes, sha(body(2)))


# --------------------------------------------------------- state, changes

async def test_changes_since_a_modseq(mailboxes: Store) -> None:
    projets = await mailboxes.folders.create(PER, "Projets")
    for n in range(3):
        await mailboxes.folders.append(projets.id, body(n))  # UIDs 1-3, MODSEQs 2-4
    mark = 4
    await mailboxes.folders.store_flags(projets.id, [1], "+", ["\\Seen"])  # 5
    await mailboxes.folders.append(projets.id, body(3))  # UID 4, 6
    await mailboxes.folders.store_flags(projets.id, [3], "+", ["\\Deleted"])  # 7
    assert await mailboxes.folders.expunge(projets.id) == [3]  # 8

    now = await folder(mailboxes, "Projets")
    assert now.highestmodseq == 8
    assert await mailboxes.folders.changes(projets.id, mark) == FolderChanges(
        now, [(1, "\\Seen", 5), (4, "", 6)], [3])
    assert await mailboxes.folders.changes(projets.id, 6) == FolderChanges(now, [], [3])
    assert await mailboxes.folders.changes(projets.id, 8) == FolderChanges(now, [], [])
    assert await mailboxes.folders.changes(projets.id, 100) == FolderChanges(now, [], [])
    assert await mailboxes.folders.changes(projets.id, 0) == FolderChanges(
        now, [(1, "\\Seen", 5), (2, "", 3), (4, "", 6)], [3])

    await mailboxes.folders.delete(PER, "Projets")
    assert await mailboxes.folders.changes(projets.id, mark) is None
    assert await mailboxes.folders.changes(projets.id, 0) is None
    assert await mailboxes.folders.state(projets.id) is None
    assert await mailboxes.folders.expunged_since(projets.id, 0) == []


async def test_state_lists_messages_in_uid_order(mailboxes: Store) -> None:
    archive = await folder(mailboxes, "Archive")
    uids = await mailboxes.folders.bulk_append(PER, "Archive", [
        (body(n), "", 1000.0 + n) for n in range(6)])
    assert uids == [1, 2, 3, 4, 5, 6]
    # updates move rows around (PostgreSQL writes new row versions at the end)
    await mailboxes.folders.store_flags(archive.id, [1], "+", ["\\Seen"])  # 3
    await mailboxes.folders.store_flags(archive.id, [4, 2], "+", ["$A"])  # 4
    await mailboxes.folders.store_flags(archive.id, [5], "+", ["\\Deleted"])  # 5
    await mailboxes.folders.expunge(archive.id)  # 6
    await mailboxes.folders.store_flags(archive.id, [1], "+", ["\\Answered"])  # 7
    state = await mailboxes.folders.state(archive.id)
    assert state is not None
    assert state.folder == await folder(mailboxes, "Archive")
    assert state.folder.highestmodseq == 7 and state.folder.uidnext == 7
    assert state.uids == [1, 2, 3, 4, 6]
    assert state.flags == ["\\Answered \\Seen", "$A", "", "$A", ""]
    assert state.modseqs == [7, 4, 2, 4, 2]


# ---------------------------------------------------------------- bodies

async def test_a_body_goes_with_its_last_reference(mailboxes: Store,
                                                   count_rows: RowCounter) -> None:
    accepted = await mailboxes.accept_message(BODY, envelope_from=SENDER, local=[PER],
                                              remote=[], summary=SUMMARY)
    inbox = await folder(mailboxes, "INBOX")
    archive = await folder(mailboxes, "Archive")
    projets = await mailboxes.folders.create(PER, "Projets")
    await mailboxes.folders.copy(inbox.id, [1], archive.id)
    await mailboxes.folders.copy(inbox.id, [1], projets.id)
    assert await count_rows("bodies") == 1

    await mailboxes.folders.delete(PER, "Archive")  # INBOX and Projets hold it
    assert await mailboxes.get_body(accepted.sha256) == BODY
    await mailboxes.folders.store_flags(inbox.id, [1], "+", ["\\Deleted"])
    assert await mailboxes.folders.expunge(inbox.id) == [1]  # Projets holds it
    assert await mailboxes.get_body(accepted.sha256) == BODY
    await mailboxes.folders.delete(PER, "Projets")  # the last one
    assert not await has_body(mailboxes, accepted.sha256)
    assert await count_rows("bodies") == 0 and await count_rows("messages") == 0


async def test_a_body_stays_while_another_mailbox_or_the_queue_holds_it(
        mailboxes: Store, count_rows: RowCounter) -> None:
    accepted = await mailboxes.accept_message(
        BODY, envelope_from=SENDER, local=[PER, ORG], summary=SUMMARY,
        remote=[OutboundRecipient("carol@medecin.mssante.fr")])
    per_inbox = await folder(mailboxes, "INBOX")
    org_inbox = await folder(mailboxes, "INBOX", ORG)
    for inbox in (per_inbox, org_inbox):
        await mailboxes.folders.store_flags(inbox.id, [1], "+", ["\\Deleted"])
        assert await mailboxes.folders.expunge(inbox.id) == [1]
        assert await mailboxes.get_body(accepted.sha256) == BODY  # the queue holds it
    assert await count_rows("messages") == 0 and await count_rows("bodies") == 1

    other = await mailboxes.accept_message(body(1), envelope_from=SENDER, local=[PER, ORG],
                                           remote=[], summary=SUMMARY)
    await mailboxes.folders.store_flags(per_inbox.id, [2], "+", ["\\Deleted"])
    await mailboxes.folders.expunge(per_inbox.id)
    assert await has_body(mailboxes, other.sha256)  # ORG holds it
    await mailboxes.folders.delete(ORG, "Archive")
    await mailboxes.folders.copy(org_inbox.id, [2], (await folder(mailboxes, "Trash", ORG)).id,
                                 move=True)
    assert await has_body(mailboxes, other.sha256)
    await mailboxes.folders.delete(ORG, "Trash")
    assert not await has_body(mailboxes, other.sha256)


# ------------------------------------------------------------- migration

def _upgrade_to_0002(conn: Connection) -> None:
    command.upgrade(alembic_config(conn), "0002")


async def test_migration_puts_existing_messages_in_inbox(database: Database) -> None:
    uidvalidity = 1_600_000_000
    engine = create_engine(database_url(database.url), schema=database.schema)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to_0002)
            await conn.execute(text(
                "INSERT INTO persons (id, login, kind, display_name, created_at) "
                "VALUES (1, 'dr', 'professional', 'Dr', 0)"))
            for mid, address, validity, uidnext in ((1, "a@x.mssante.fr", uidvalidity, 3),
                                                    (2, "b@x.mssante.fr", 1_500_000_000, 1)):
                await conn.execute(text(
                    "INSERT INTO mailboxes (id, address, display_address, domain, type, "
                    "description, organisation, service, active, uidvalidity, uidnext, "
                    "created_at) VALUES (:id, :a, :a, 'x.mssante.fr', 'PER', '', '', '', "
                    ":active, :v, :n, 0)"),
                    {"id": mid, "a": address, "active": True, "v": validity, "n": uidnext})
                await conn.execute(text(
                    "INSERT INTO mailbox_roles (mailbox_id, person_id, role, rights) "
                    "VALUES (:m, 1, 'owner', 'rw')"), {"m": mid})
            for uid, data, flags in ((1, body(1), "\\Seen"), (2, body(2), "")):
                await conn.execute(text(
                    "INSERT INTO bodies (sha256, size, data) VALUES (:s, :n, :d)"),
                    {"s": sha(data), "n": len(data), "d": data})
                await conn.execute(text(
                    "INSERT INTO messages (mailbox_id, uid, body_sha256, received_at, flags, "
                    "envelope_from, message_id, subject, from_header, date_header, size) "
                    "VALUES (1, :uid, :s, :t, :f, :e, NULL, :subject, NULL, NULL, :n)"),
                    {"uid": uid, "s": sha(data), "t": 1000.0 + uid, "f": flags, "e": SENDER,
                     "subject": f"message {uid}", "n": len(data)})
    finally:
        await engine.dispose()

    store = await database.open()
    assert await store.schema_revision() == head_revision()
    found = await store.folders.all("a@x.mssante.fr")
    assert [(f.name, f.special_use) for f in found] == [("INBOX", None), *SPECIAL]
    inbox = found[0]
    assert (inbox.uidvalidity, inbox.uidnext, inbox.highestmodseq, inbox.subscribed) == (
        uidvalidity, 3, 1, True)
    assert inbox.recent_uid == 3  # migration 0008r: what was there is not \Recent
    for special in found[1:]:
        assert (special.uidvalidity, special.uidnext, special.highestmodseq) == (
            uidvalidity, 1, 1)
        assert await uids_of(store, special.id) == []
    state = await store.folders.state(inbox.id)
    assert state is not None
    assert (state.uids, state.flags, state.modseqs) == ([1, 2], ["\\Seen", ""], [1, 1])
    async with store.tx.engine.connect() as conn:  # past the API: the new columns
        rows = (await conn.execute(text(
            "SELECT uid, folder_id, modseq FROM messages ORDER BY uid"))).all()
    assert [tuple(r) for r in rows] == [(1, inbox.id, 1), (2, inbox.id, 1)]
    messages = await store.list_messages("a@x.mssante.fr")
    assert [(m.uid, m.subject, m.received_at, m.envelope_from) for m in messages] == [
        (1, "message 1", 1001.0, SENDER), (2, "message 2", 1002.0, SENDER)]
    assert await store.folders.expunged_since(inbox.id, 0) == []

    other = await store.folders.all("b@x.mssante.fr")
    assert [(f.name, f.uidvalidity, f.uidnext) for f in other] == [
        (name, 1_500_000_000, 1) for name in ("INBOX", "Archive", "Drafts", "Sent", "Trash")]

    # life goes on: UIDs continue, MODSEQs grow, new folders get a new UIDVALIDITY
    accepted = await deliver(store, 3, local=("a@x.mssante.fr",))
    assert accepted.message_uids == {"a@x.mssante.fr": 3}
    state = await store.folders.state(inbox.id)
    assert state is not None and state.uids == [1, 2, 3] and state.modseqs == [1, 1, 2]
    assert (await store.folders.create("a@x.mssante.fr", "Projets")).uidvalidity > uidvalidity
    await store.folders.store_flags(inbox.id, [1], "+", ["\\Deleted"])
    assert await store.folders.expunge(inbox.id) == [1]
    assert not await has_body(store, sha(body(1)))


# ---------------------------------------------------------- notifications

async def test_changes_are_published_to_the_folder_subscribers(mailboxes: Store) -> None:
    calls: Counter[str] = Counter()
    inbox = await folder(mailboxes, "INBOX")
    archive = await folder(mailboxes, "Archive")
    drafts = await folder(mailboxes, "Drafts")
    org_inbox = await folder(mailboxes, "INBOX", ORG)
    hub = mailboxes.folders.hub

    def counter(name: str) -> Callable[[], None]:
        return lambda: calls.update([name])

    unsubscribe = hub.subscribe(inbox.id, counter("inbox"))
    for f in (archive, drafts, org_inbox):
        hub.subscribe(f.id, counter(f.name if f is not org_inbox else "org"))

    await deliver(mailboxes, 1)
    assert calls == {"inbox": 1}
    await deliver(mailboxes, 2, local=(ORG,))
    assert calls == {"inbox": 1, "org": 1}
    await deliver(mailboxes, 3)
    assert calls == {"inbox": 2, "org": 1}
    await mailboxes.folders.store_flags(inbox.id, [1], "+", ["\\Deleted"])
    assert calls == {"inbox": 3, "org": 1}
    await mailboxes.folders.store_flags(inbox.id, [1], "+", ["\\Deleted"])  # no change
    assert calls == {"inbox": 3, "org": 1}
    assert await mailboxes.folders.expunge(inbox.id) == [1]
    assert calls == {"inbox": 4, "org": 1}
    await mailboxes.folders.append(inbox.id, body(4))
    assert calls == {"inbox": 5, "org": 1}
    await mailboxes.folders.append(archive.id, body(5))
    assert calls == {"inbox": 5, "org": 1, "Archive": 1}
    await mailboxes.folders.copy(inbox.id, [2], archive.id)
    assert calls == {"inbox": 5, "org": 1, "Archive": 2}
    await mailboxes.folders.copy(inbox.id, [2], drafts.id, move=True)
    assert calls == {"inbox": 6, "org": 1, "Archive": 2, "Drafts": 1}
    await mailboxes.folders.delete(PER, "Drafts")
    assert calls == {"inbox": 6, "org": 1, "Archive": 2, "Drafts": 2}
    await mailboxes.folders.create(PER, "Projets")
    await mailboxes.folders.subscribe(PER, "Projets", False)
    assert calls == {"inbox": 6, "org": 1, "Archive": 2, "Drafts": 2}
    await mailboxes.folders.rename(PER, "INBOX", "Ancienne")  # INBOX empties
    assert calls == {"inbox": 7, "org": 1, "Archive": 2, "Drafts": 2}

    unsubscribe()
    unsubscribe()  # harmless
    await deliver(mailboxes, 6)
    assert calls == {"inbox": 7, "org": 1, "Archive": 2, "Drafts": 2}


# Across processes (PostgreSQL). The channel is database-wide: other test runs on
# the same server (each in its own schema) notify their own folder ids, small
# numbers like ours. So these tests move their folder ids far away first, and check
# that a store listens with a probe no real folder id can match.

PROBE = -1  # a folder id no folder has


# SQLite has no channel between processes (the sessions of another process see a
# change at their next command): these tests run on PostgreSQL only.
ON_POSTGRES = pytest.mark.parametrize(
    "database", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@pytest.fixture
async def remote_mailboxes(database: Database, people: Store) -> Store:
    """The mailboxes of ``mailboxes`` (conftest), with folder ids no other schema uses."""
    async with people.tx.engine.begin() as conn:
        await conn.execute(text("SELECT setval(pg_get_serial_sequence('folders', 'id'), :n)"),
                           {"n": random.randrange(10**8, 2 * 10**9)})
    await people.create_mailbox(f"Alice.Martin@{DOMAIN}", MailboxType.PER, rules=Rules(),
                                owner="dr")
    await people.create_mailbox(ORG, MailboxType.ORG, rules=Rules(), responsible=["dr"])
    return people


async def _listen(store: Store, sender: Store) -> None:
    """Start ``store`` following other processes' changes, and wait until it hears
    them: a notification sent before its LISTEN would be missed."""
    heard = asyncio.Event()
    unsubscribe = store.folders.hub.subscribe(PROBE, heard.set)
    store.listen_for_changes()
    deadline = time.monotonic() + 10
    try:
        while not heard.is_set():
            assert time.monotonic() < deadline, "the store never heard a notification"
            async with sender.tx.engine.connect() as conn:
                await conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                                   {"channel": CHANNEL, "payload": f"probe:{PROBE}"})
                await conn.commit()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(heard.wait(), 0.1)
    finally:
        unsubscribe()


async def _heard_all_before(store: Store, sender: Store) -> None:
    """Wait until ``store`` has heard every notification ``sender`` committed so far:
    PostgreSQL delivers a listener's notifications in commit order, so once a probe
    sent now is heard, any earlier one (a wrong one included) has been dispatched."""
    heard = asyncio.Event()
    unsubscribe = store.folders.hub.subscribe(PROBE, heard.set)
    try:
        async with sender.tx.engine.connect() as conn:
            await conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                               {"channel": CHANNEL, "payload": f"probe:{PROBE}"})
            await conn.commit()
        await asyncio.wait_for(heard.wait(), WAKE_TIMEOUT)
    finally:
        unsubscribe()


@ON_POSTGRES
@pytest.mark.parametrize("change", ["accept_message", "append", "store_flags", "expunge",
                                    "copy", "move_target", "move_source", "rename_inbox",
                                    "delete"])
async def test_a_change_wakes_the_subscribers_of_another_process(
        database: Database, remote_mailboxes: Store, change: str) -> None:
    a = remote_mailboxes
    await deliver(a, 1)
    inbox = await folder(a, "INBOX")
    archive = await folder(a, "Archive")
    drafts = await folder(a, "Drafts")
    await a.folders.store_flags(inbox.id, [1], "+", ["\\Deleted"])

    b = await database.open()  # another process: its own hub and token
    assert b.folders.hub is not a.folders.hub
    assert b.folders.hub.token != a.folders.hub.token
    await _listen(b, a)
    watched = archive if change in ("move_target", "copy", "delete") else inbox
    woken, elsewhere = asyncio.Event(), asyncio.Event()
    b.folders.hub.subscribe(watched.id, woken.set)
    b.folders.hub.subscribe(drafts.id, elsewhere.set)

    if change == "accept_message":
        await deliver(a, 2)
    elif change == "append":
        await a.folders.append(inbox.id, body(2))
    elif change == "store_flags":
        await a.folders.store_flags(inbox.id, [1], "+", ["\\Seen"])
    elif change == "expunge":
        assert await a.folders.expunge(inbox.id) == [1]
    elif change == "copy":
        await a.folders.copy(inbox.id, [1], archive.id)
    elif change in ("move_target", "move_source"):
        await a.folders.copy(inbox.id, [1], archive.id, move=True)
    elif change == "rename_inbox":
        await a.folders.rename(PER, "INBOX", "Ancienne")
    elif change == "delete":
        await a.folders.delete(PER, "Archive")

    await asyncio.wait_for(woken.wait(), WAKE_TIMEOUT)
    await _heard_all_before(b, a)  # a wrong notification would have been dispatched
    assert not elsewhere.is_set()


@ON_POSTGRES
async def test_own_notifications_are_not_published_twice(
        database: Database, remote_mailboxes: Store) -> None:
    a = remote_mailboxes
    b = await database.open()
    await _listen(a, b)
    await _listen(b, a)
    inbox = await folder(a, "INBOX")
    calls: Counter[str] = Counter()
    woken = asyncio.Event()
    a.folders.hub.subscribe(inbox.id, lambda: calls.update(["a"]))

    def on_b() -> None:
        calls.update(["b"])
        woken.set()

    b.folders.hub.subscribe(inbox.id, on_b)
    await a.folders.append(inbox.id, body(1))
    assert calls["a"] == 1  # at once, in its own process
    await asyncio.wait_for(woken.wait(), WAKE_TIMEOUT)
    await _heard_all_before(a, b)  # A's own listener has heard its own notification
    assert calls == {"a": 1, "b": 1}


@ON_POSTGRES
async def test_a_lost_listen_connection_is_opened_again(
        database: Database, remote_mailboxes: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Notifications may be missed while the connection is down: every subscriber is
    called once when it is back, and later changes wake them again."""
    import asyncpg  # type: ignore[import-untyped]

    opened: list[asyncpg.Connection] = []
    connect = asyncpg.connect

    async def keep(*args: object, **kwargs: object) -> asyncpg.Connection:
        connection = await connect(*args, **kwargs)
        if args:  # the listener's connect(dsn); SQLAlchemy's pool passes keywords
            opened.append(connection)
        return connection

    monkeypatch.setattr(asyncpg, "connect", keep)
    a = remote_mailboxes
    b = await database.open()
    await _listen(b, a)
    [listener] = opened
    inbox = await folder(a, "INBOX")
    archive = await folder(a, "Archive")
    woken = {inbox.id: asyncio.Event(), archive.id: asyncio.Event()}
    for folder_id, event in woken.items():
        b.folders.hub.subscribe(folder_id, event.set)

    async with a.tx.engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"),
                           {"pid": listener.get_server_pid()})
    for event in woken.values():
        await asyncio.wait_for(event.wait(), WAKE_TIMEOUT + RECONNECT_DELAY)
    assert len(opened) == 2 and listener.is_closed()

    for event in woken.values():
        event.clear()
    await _listen(b, a)  # listening again: a change wakes its subscribers
    await a.folders.append(inbox.id, body(1))
    await asyncio.wait_for(woken[inbox.id].wait(), WAKE_TIMEOUT)
    await _heard_all_before(b, a)
    assert not woken[archive.id].is_set()


async def test_a_page_of_a_folder_newest_first(mailboxes: Store) -> None:
    """``page``: the count and one page of UIDs with their flags, newest first, read
    from the index; what lies past the end is an empty page."""
    address = f"cardiologie@{DOMAIN}"
    body = b"From: a@ch-xyz.mssante.fr\r\nSubject: x\r\n\r\nx\r\n"
    uids = await mailboxes.folders.bulk_append(
        address, "INBOX", [(body, "\\Seen" if i % 2 else "", 1_700_000_000.0 + i)
                           for i in range(120)])
    inbox = await mailboxes.folders.get(address, "INBOX")
    assert inbox is not None
    total, first = await mailboxes.folders.page(inbox.id, 0, 50)
    assert total == 120 and [u for u, _ in first] == sorted(uids, reverse=True)[:50]
    assert dict(first)[uids[-1]] == "\\Seen" and dict(first)[uids[-2]] == ""
    total, last = await mailboxes.folders.page(inbox.id, 100, 50)
    assert [u for u, _ in last] == sorted(uids, reverse=True)[100:]
    assert (await mailboxes.folders.page(inbox.id, 200, 50)) == (120, [])
    await mailboxes.folders.store_flags(inbox.id, uids[:10], "+", ["\\Deleted"])
    await mailboxes.folders.expunge(inbox.id, uids[:10])
    total, _ = await mailboxes.folders.page(inbox.id, 0, 50)
    assert total == 110


async def test_the_unread_messages_with_a_keyword_newest_first(mailboxes: Store) -> None:
    """``unread_with_keyword``: what the webmail puts first (unread health alerts);
    a keyword that only contains the one asked for, or a read message, is not one."""
    address = f"cardiologie@{DOMAIN}"
    body = b"From: a@ch-xyz.mssante.fr\r\nSubject: x\r\n\r\nx\r\n"
    flags = ["$Alerte", "", "$Alerte \\Seen", "$Alertes", "\\Flagged $Alerte", "%_$Alerte"]
    uids = await mailboxes.folders.bulk_append(
        address, "INBOX", [(body, f, 1_700_000_000.0 + i) for i, f in enumerate(flags)])
    inbox = await mailboxes.folders.get(address, "INBOX")
    assert inbox is not None
    found = await mailboxes.folders.unread_with_keyword(inbox.id, "$Alerte", 10)
    assert [uid for uid, _ in found] == [uids[4], uids[0]]
    assert set(found[0][1].split()) == {"\\Flagged", "$Alerte"}
    assert await mailboxes.folders.unread_with_keyword(inbox.id, "$Alerte", 1) == found[:1]


async def test_recent_uids_are_claimed_once(mailboxes: Store) -> None:
    """RFC 3501 §2.3.2: a message is \\Recent in one session only; claims at the same
    moment (as sessions of two processes make them) share out the UIDs, never twice."""
    inbox = await folder(mailboxes, "INBOX")
    assert inbox.recent_uid == 1
    for n in range(3):
        await deliver(mailboxes, n)
    firsts = await asyncio.gather(*(mailboxes.folders.claim_recent(inbox.id, 4)
                                    for _ in range(5)))
    assert sorted(firsts) == [1, 4, 4, 4, 4]  # one got UIDs 1 to 3, the others none
    assert (await folder(mailboxes, "INBOX")).recent_uid == 4
    assert await mailboxes.folders.recent_count(inbox.id) == 0
    await deliver(mailboxes, 3)
    assert await mailboxes.folders.recent_count(inbox.id) == 1
    assert await mailboxes.folders.claim_recent(inbox.id, 5) == 4
    assert await mailboxes.folders.claim_recent(inbox.id, 3) == 5  # nothing moves back
