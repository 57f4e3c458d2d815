"""Session state that must not leak or go stale: the saved search result, the held
sequence numbers of a deleted folder, per-person subscriptions in shared mailboxes,
CONDSTORE/QRESYNC parameters, and LIST patterns that must not stall the server."""

from __future__ import annotations

import imaplib
from typing import Any

import pytest

from mssante.imap.listing import full_pattern, matches
from tests.imap.conftest import fresh_org, fresh_person, grant, login


def ok(result: tuple[str, list[Any]]) -> list[Any]:
    typ, data = result
    assert typ == "OK", data
    return data


def _fill(client: imaplib.IMAP4, folder: str, count: int) -> None:
    for n in range(count):
        ok(client.append(folder, None, None, b"Subject: %d\r\n\r\nbody\r\n" % n))


def test_the_saved_result_is_forgotten_when_another_folder_is_selected(imap_env: Any) -> None:
    """RFC 5182 §2.1: ``$`` empties at SELECT; it must never name another folder's UIDs."""
    client = login(imap_env, fresh_person(imap_env))
    _fill(client, "INBOX", 3)
    _fill(client, "Archive", 3)
    client.select("INBOX")
    ok(client.uid("SEARCH", "RETURN", "(SAVE)", "ALL"))
    client.select("Archive")
    ok(client.uid("STORE", "$", "+FLAGS", "(\\Deleted)"))
    ok(client.uid("EXPUNGE", "$"))
    assert ok(client.status("Archive", "(MESSAGES)")) == [b"Archive (MESSAGES 3)"]
    client.logout()


def test_vanished_names_every_expunged_uid_of_the_set(imap_env: Any) -> None:
    """RFC 7162 §3.2.6: UID FETCH ... (CHANGEDSINCE n VANISHED) reports the expunged UIDs
    the set names, also beyond the last UID still there."""
    client = login(imap_env, fresh_person(imap_env))
    _fill(client, "INBOX", 10)
    client._simple_command("ENABLE", "QRESYNC")
    client.select("INBOX")
    before = int(ok(client.status("INBOX", "(HIGHESTMODSEQ)"))[0].split()[-1].strip(b")"))
    ok(client.uid("STORE", "3,9:10", "+FLAGS.SILENT", "(\\Deleted)"))
    ok(client.expunge())
    client.untagged_responses.pop("VANISHED", None)  # the EXPUNGE's own VANISHED
    typ, _ = client.uid("FETCH", "1:10", "(FLAGS)", f"(CHANGEDSINCE {before} VANISHED)")
    assert typ == "OK"
    assert client.untagged_responses.get("VANISHED") == [b"(EARLIER) 3,9:10"]
    client.untagged_responses.pop("VANISHED", None)
    typ, _ = client.uid("FETCH", "9:10", "(FLAGS)", f"(CHANGEDSINCE {before} VANISHED)")
    assert typ == "OK" and client.untagged_responses.get("VANISHED") == [b"(EARLIER) 9:10"]
    client.logout()


def test_every_session_of_a_deleted_folder_is_told(imap_env: Any) -> None:
    person = fresh_person(imap_env)
    first, second, third = (login(imap_env, person) for _ in range(3))
    ok(first.create("Projets"))
    _fill(first, "Projets", 2)
    first.select("Projets")
    second.select("Projets")
    ok(third.delete("Projets"))
    for client in (first, second):  # each one hears it at its next command
        try:
            with pytest.raises(imaplib.IMAP4.abort, match="deleted"):
                client.noop()
        finally:
            client.shutdown()
    third.logout()


def test_each_person_has_their_own_subscriptions_in_a_shared_mailbox(imap_env: Any) -> None:
    """A delegate's UNSUBSCRIBE hides the folder from their own LSUB only; the
    responsible's view, and another delegate's, are unchanged."""
    responsible, delegate, other = (fresh_person(imap_env) for _ in range(3))
    address = fresh_org(imap_env, responsible)
    grant(imap_env, address, delegate, "rw")
    grant(imap_env, address, other, "r")
    inbox = f"Shared/{address}/INBOX"

    def subscribed(client: imaplib.IMAP4) -> bool:
        return any(inbox.encode() in line for line in ok(client.lsub()) if line)

    clients = {who: login(imap_env, who) for who in (responsible, delegate, other)}
    try:
        assert all(subscribed(c) for c in clients.values())  # everyone's default
        ok(clients[delegate].unsubscribe(f'"{inbox}"'))
        assert [subscribed(clients[w]) for w in (responsible, delegate, other)] == [
            True, False, True]
        ok(clients[other].unsubscribe(f'"{inbox}"'))  # read-only rights are enough
        ok(clients[delegate].subscribe(f'"{inbox}"'))
        assert [subscribed(clients[w]) for w in (responsible, delegate, other)] == [
            True, True, False]
        typ, data = clients[delegate].unsubscribe(f'"Shared/{address}/Nowhere"')
        assert typ == "NO" and b"[NONEXISTENT]" in data[0]
    finally:
        for client in clients.values():
            client.logout()


def test_bad_select_parameters_leave_the_session_as_it_was(imap_env: Any) -> None:
    client = login(imap_env, fresh_person(imap_env))
    client._simple_command("ENABLE", "QRESYNC")
    _fill(client, "INBOX", 1)
    ok(client.select("INBOX"))
    for params in ("(QRESYNC (1))", "(QRESYNC (1 99999999999999999999))"):
        with pytest.raises(imaplib.IMAP4.error, match="BAD"):
            client._simple_command("SELECT", "Sent", params)
    ok(client.noop())  # the session is alive, INBOX (one message) still selected
    assert ok(client.uid("SEARCH", "ALL")) == [b"1"]
    client.logout()


@pytest.mark.parametrize("pattern,name,expected", [
    ("*", "INBOX", True), ("%", "a/b", False), ("a/%", "a/b", True), ("*b", "a/b", True),
    ("Shared/%", "Shared/x@y.fr/INBOX", False), ("Shared/%/%", "Shared/x@y.fr/INBOX", True),
    ("inbox", "INBOX", True), ("In%", "INBOX", False), ("**%%", "a/b", True),
    ("%%", "a/b", False), ("a*a*a*a*a*a*a*a*a*ab", "a" * 200, False),
    ("**********#", "Shared/x@y.fr/Archive", False),
])
def test_list_patterns(pattern: str, name: str, expected: bool) -> None:
    """RFC 9051 §6.3.9 wildcards, matched without backtracking: the last two patterns
    took a regular expression seconds to hours, stalling the whole operator."""
    assert matches(full_pattern("", pattern), name) is expected


def test_a_pathological_list_pattern_is_answered(imap_env: Any) -> None:
    client = login(imap_env, fresh_person(imap_env))
    assert ok(client.list('""', "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*ab")) == [None]
    assert len(ok(client.list('""', "**********"))) >= 5
    client.logout()


def test_a_thunderbird_header_fetch(imap_env: Any) -> None:
    """The request Thunderbird sends to fill its message list."""
    client = login(imap_env, fresh_person(imap_env))
    ok(client.append("INBOX", None, None,
                     b"From: Dr Dupont <dupont@ch-xyz.mssante.fr>\r\nTo: x@ch-xyz.mssante.fr\r\n"
                     b"Subject: =?utf-8?q?Compte_rendu_d=27=C3=A9chographie?=\r\n"
                     b"X-Other: hidden\r\n\r\nBonjour\r\n"))
    client.select("INBOX")
    data = ok(client.uid("FETCH", "1:*", "(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS "
                         "(From To Cc Bcc Subject Date Message-ID Priority X-Priority "
                         "References Newsgroups In-Reply-To Content-Type Reply-To)])"))
    head, fields = data[0]
    # \\Recent: this IMAP4rev1 session is the first to see it (RFC 3501 §2.3.2)
    assert b"UID 1" in head and b"RFC822.SIZE" in head and b"FLAGS (\\Recent)" in head
    assert fields.startswith(b"From: Dr Dupont") and b"X-Other" not in fields
    assert fields.endswith(b"\r\n\r\n")
    assert ok(client.fetch("1", "(FLAGS)")) == [b"1 (FLAGS (\\Recent))"]  # PEEK: no \\Seen
    client.logout()
