"""The sort keys kept beside each message for IMAP SORT and THREAD (migration 0008s):
written by delivery, APPEND and COPY, read and rewritten by IMAP; on SQLite and
PostgreSQL."""

from __future__ import annotations

from mssante.content.sortkeys import decode, keys_of
from mssante.store import MessageSummary, Store

DOMAIN = "ch-xyz.mssante.fr"
PER = f"alice.martin@{DOMAIN}"
BODY = (b"From: Dr Bruno Petit <bruno.petit@medecin.mssante.fr>\r\n"
        b"To: Alice Martin <alice.martin@ch-xyz.mssante.fr>\r\n"
        b"Subject: Re: CR consultation\r\nMessage-ID: <cr-2@medecin.mssante.fr>\r\n"
        b"References: <cr-1@medecin.mssante.fr>\r\n"
        b"Date: Tue, 4 Mar 2025 10:00:00 +0100\r\n\r\nCompte rendu.\r\n")
SUMMARY = MessageSummary(message_id="<cr-2@medecin.mssante.fr>",
                         subject="Re: CR consultation",
                         from_header="Dr Bruno Petit <bruno.petit@medecin.mssante.fr>",
                         date_header="Tue, 4 Mar 2025 10:00:00 +0100")


async def test_every_way_in_keeps_the_sort_keys(mailboxes: Store) -> None:
    folders = mailboxes.folders
    expected = keys_of(BODY)
    assert expected.subject == "cr consultation" and expected.references == (
        "cr-1@medecin.mssante.fr",)
    await mailboxes.accept_message(BODY, envelope_from="bruno.petit@medecin.mssante.fr",
                                   local=[PER], remote=[], summary=SUMMARY)
    inbox = await folders.get(PER, "INBOX")
    drafts = await folders.get(PER, "Drafts")
    archive = await folders.get(PER, "Archive")
    assert inbox is not None and drafts is not None and archive is not None
    _, appended = await folders.append_many(drafts.id, [(BODY, ["\\Seen"], None),
                                                        (BODY, [], 1000.0)])
    _, _, copied = await folders.copy(inbox.id, [1], archive.id)
    for folder_id, uids in ((inbox.id, [1]), (drafts.id, appended), (archive.id, copied)):
        rows = await folders.sort_data(folder_id, uids)
        assert [decode(rows[uid][2]) for uid in uids] == [expected] * len(uids)
    rows = await folders.sort_data(drafts.id, appended)
    assert rows[appended[1]][0] == 1000.0 and rows[appended[1]][1] == len(BODY)


async def test_keys_are_rewritten_and_heads_read(mailboxes: Store) -> None:
    folders = mailboxes.folders
    drafts = await folders.get(PER, "Drafts")
    assert drafts is not None
    _, uids = await folders.append_many(drafts.id, [(BODY, [], None)])
    await folders.set_sort_keys(drafts.id, {uids[0]: "[0]"})
    rows = await folders.sort_data(drafts.id, uids)
    assert rows[uids[0]][2] == "[0]"
    sha = rows[uids[0]][3]
    heads = await folders.body_heads([sha], 40)
    assert heads == {sha: BODY[:40]}
