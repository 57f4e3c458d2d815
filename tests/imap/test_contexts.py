"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4): searches kept up to date, against the
running operator with imaplib (and raw transcripts where the order of the lines matters).

Each test works on a fresh person: one connection searches with RETURN (UPDATE),
another (or the same) changes the mailbox, and the ESEARCH updates (ADDTO, REMOVEFROM)
arrive with the next command.
"""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.imap.contexts import MAX_CONTEXTS, Run, edits
from tests.imap.conftest import Account, fresh_person, login
from tests.imap.test_transcripts import SELECT_FLAGS, append, imap  # noqa: F401

_TAG = re.compile(rb'^\(TAG "([^"]+)"\)')


def ok(result: tuple[str, list[Any]]) -> list[Any]:
    typ, data = result
    assert typ == "OK", data
    return data


def message(subject: str) -> bytes:
    return (f"From: Dr Alice <alice@ch-xyz.mssante.fr>\r\nTo: bob@ch-xyz.mssante.fr\r\n"
            f"Subject: {subject}\r\n\r\nBonjour.\r\n").encode()


def search(client: imaplib.IMAP4, command: str, *args: str) -> tuple[str, bytes]:
    """A searching command with RETURN options: (its tag, its ESEARCH data after the
    correlator)."""
    client.untagged_responses.pop("ESEARCH", None)
    if command.startswith("UID "):
        ok(client.uid(command[4:], *args))
    else:
        ok(client._simple_command(command, *args))
    (line,) = client.untagged_responses.pop("ESEARCH")
    found = _TAG.match(line)
    assert found is not None, line
    return found.group(1).decode(), line[found.end():].strip()


def updates(client: imaplib.IMAP4) -> list[bytes]:
    """The ESEARCH updates that came with a NOOP."""
    client.untagged_responses.pop("ESEARCH", None)
    ok(client.noop())
    return client.untagged_responses.pop("ESEARCH", [])


def applied(items: list[int], removals: list[Run], additions: list[Run]) -> list[int]:
    """A client's list after REMOVEFROM then ADDTO with positions (RFC 5267 §4.3.3,
    §4.3.4): each pair in order, a removal's first item at its position."""
    result = list(items)
    for position, uids in removals:
        assert result[position - 1:position - 1 + len(uids)] == uids
        del result[position - 1:position - 1 + len(uids)]
    for position, uids in additions:
        result[position - 1:position - 1] = uids
    return result


@given(st.lists(st.integers(1, 60), unique=True), st.data())
def test_edits_turn_the_old_sorted_list_into_the_new(old: list[int], data: Any) -> None:
    """What stays keeps its order (sorting is stable, sort keys never change), so the
    runs of a SORT context take the client from the old list to the new."""
    kept = [uid for uid in old if data.draw(st.booleans())]
    new = list(kept)
    for uid in data.draw(st.lists(st.integers(61, 120), unique=True)):
        new.insert(data.draw(st.integers(0, len(new))), uid)
    removals, additions = edits(old, new)
    assert applied(old, removals, additions) == new
    assert all(position >= 1 for position, _ in removals + additions)
    assert edits(new, new) == ([], [])


@pytest.fixture
def pair(environment: Any) -> Iterator[tuple[imaplib.IMAP4, imaplib.IMAP4, Account]]:
    """Two connections of one fresh person, INBOX selected in the first; three
    unseen messages (UIDs 1 to 3, subjects b, d, f)."""
    person = fresh_person(environment)
    watcher, other = login(environment, person), login(environment, person)
    for subject in ("b", "d", "f"):
        ok(other.append("INBOX", None, None, message(subject)))
    ok(watcher.select("INBOX"))
    ok(other.select("INBOX"))
    yield watcher, other, person
    for client in (watcher, other):
        client.logout()


def test_capabilities_name_both_contexts(pair: Any) -> None:
    caps = ok(pair[0].capability())[0].split()
    assert b"CONTEXT=SEARCH" in caps and b"CONTEXT=SORT" in caps
    assert b"ESORT" in caps  # RFC 5267 §4.1: CONTEXT=SORT comes with the extended SORT


def test_append_by_another_connection_is_added(pair: Any) -> None:
    watcher, other, _ = pair
    tag, data = search(watcher, "UID SEARCH", "RETURN", "(UPDATE)", "UNSEEN")
    assert data == b"UID"  # UPDATE alone asks for no result data
    ok(other.append("INBOX", None, None, message("h")))
    assert updates(watcher) == [f'(TAG "{tag}") UID ADDTO (0 4)'.encode()]
    assert updates(watcher) == []  # said once
    # a SEARCH (sequence numbers) is told in sequence numbers, after EXISTS
    seq_tag, data = search(watcher, "SEARCH", "RETURN", "(COUNT UPDATE)", "SUBJECT", "j")
    assert data == b"COUNT 0"
    ok(other.append("INBOX", None, None, message("j")))
    assert updates(watcher) == [f'(TAG "{tag}") UID ADDTO (0 5)'.encode(),
                                f'(TAG "{seq_tag}") ADDTO (0 5)'.encode()]
    assert watcher.untagged_responses["EXISTS"][-1] == b"5"


def test_flag_changes_move_messages_in_and_out(pair: Any) -> None:
    watcher, other, _ = pair
    tag, data = search(watcher, "UID SEARCH", "RETURN", "(ALL UPDATE)", "UNSEEN")
    assert data == b"UID ALL 1:3"
    ok(other.uid("STORE", "2", "+FLAGS", "(\\Seen)"))  # another session: out
    assert updates(watcher) == [f'(TAG "{tag}") UID REMOVEFROM (0 2)'.encode()]
    # the session's own change: told with the STORE itself
    watcher.untagged_responses.pop("ESEARCH", None)
    ok(watcher.uid("STORE", "1,3", "+FLAGS", "(\\Seen)"))
    assert watcher.untagged_responses.pop("ESEARCH") == [
        f'(TAG "{tag}") UID REMOVEFROM (0 1,3)'.encode()]
    ok(other.uid("STORE", "2", "-FLAGS", "(\\Seen)"))  # back in
    assert updates(watcher) == [f'(TAG "{tag}") UID ADDTO (0 2)'.encode()]
    # a change that does not move the message tells nothing
    ok(other.uid("STORE", "2", "+FLAGS", "(\\Flagged)"))
    assert updates(watcher) == []
    # a keyword search
    kw_tag, _ = search(watcher, "UID SEARCH", "RETURN", "(UPDATE)", "KEYWORD", "$Urgent")
    ok(other.uid("STORE", "3", "+FLAGS", "($Urgent)"))
    assert updates(watcher) == [f'(TAG "{kw_tag}") UID ADDTO (0 3)'.encode()]


def test_expunge_removes(pair: Any) -> None:
    watcher, other, _ = pair
    tag, data = search(watcher, "UID SEARCH", "RETURN", "(COUNT UPDATE)", "ALL")
    assert data == b"UID COUNT 3"
    ok(other.uid("STORE", "2", "+FLAGS", "(\\Deleted)"))
    ok(other.expunge())
    assert updates(watcher) == [f'(TAG "{tag}") UID REMOVEFROM (0 2)'.encode()]
    # the session's own expunge too
    ok(watcher.uid("STORE", "3", "+FLAGS", "(\\Deleted)"))
    watcher.untagged_responses.pop("ESEARCH", None)
    ok(watcher.expunge())
    assert watcher.untagged_responses.pop("ESEARCH") == [
        f'(TAG "{tag}") UID REMOVEFROM (0 3)'.encode()]


def test_sort_context_gives_positions(pair: Any) -> None:
    """CONTEXT=SORT: additions at their place in the sort order, removals at theirs
    (RFC 5267 §4.3.3, §4.3.4)."""
    watcher, other, _ = pair
    tag, data = search(watcher, "UID SORT", "RETURN", "(ALL UPDATE)", "(REVERSE SUBJECT)",
                       "UTF-8", "ALL")
    assert data == b"UID ALL 3,2,1"  # f, d, b
    ok(other.append("INBOX", None, None, message("c")))  # UID 4: f d c b
    assert updates(watcher) == [f'(TAG "{tag}") UID ADDTO (3 4)'.encode()]
    ok(other.append("INBOX", None, None, message("g")))  # UID 5: g f d c b
    assert updates(watcher) == [f'(TAG "{tag}") UID ADDTO (1 5)'.encode()]
    ok(other.uid("STORE", "2,4", "+FLAGS", "(\\Deleted)"))  # d, c go: g f b
    ok(other.expunge())
    assert updates(watcher) == [f'(TAG "{tag}") UID REMOVEFROM (3 2,4)'.encode()]
    # a SORT by sequence numbers; two removals apart, each position after the one before
    seq_tag, data = search(watcher, "SORT", "RETURN", "(UPDATE)", "(SUBJECT)", "UTF-8",
                           "UNSEEN")  # b f g: sequence numbers 1 2 3
    ok(other.uid("STORE", "1,5", "+FLAGS", "(\\Seen)"))
    assert updates(watcher) == [f'(TAG "{seq_tag}") REMOVEFROM (1 1 2 3)'.encode()]


def test_result_options_still_answer(pair: Any) -> None:
    """RFC 5267 §4.3: UPDATE does not change what MIN, MAX, COUNT, ALL and PARTIAL say."""
    watcher, other, _ = pair
    _, data = search(watcher, "SEARCH", "RETURN", "(MIN MAX COUNT ALL UPDATE CONTEXT)", "ALL")
    assert data == b"MIN 1 MAX 3 COUNT 3 ALL 1:3"
    tag, data = search(watcher, "UID SEARCH", "RETURN", "(PARTIAL 1:2 UPDATE)", "ALL")
    assert data == b"UID PARTIAL (1:2 1:2)"
    _, data = search(watcher, "UID SORT", "RETURN", "(MIN COUNT UPDATE)", "(SUBJECT)",
                     "UTF-8", "ALL")
    assert data == b"UID MIN 1 COUNT 3"
    _, data = search(watcher, "SEARCH", "RETURN", "(CONTEXT)", "UNSEEN")
    assert data == b"ALL 1:3"  # CONTEXT is a hint: RETURN (CONTEXT) is RETURN ()
    # the PARTIAL one hears of every change, not of its page only (RFC 5267 §4.4)
    ok(other.append("INBOX", None, None, message("z")))
    assert f'(TAG "{tag}") UID ADDTO (0 4)'.encode() in updates(watcher)


def test_cancelupdate(pair: Any) -> None:
    watcher, other, _ = pair
    first, _ = search(watcher, "UID SEARCH", "RETURN", "(UPDATE)", "ALL")
    second, _ = search(watcher, "UID SEARCH", "RETURN", "(UPDATE)", "UNSEEN")
    ok(watcher.xatom("CANCELUPDATE", f'"{first}"'))
    ok(other.append("INBOX", None, None, message("k")))
    assert updates(watcher) == [f'(TAG "{second}") UID ADDTO (0 4)'.encode()]
    for bad in (f'"{first}"', '"nosuch"', second, f'"{second}" "nosuch"'):
        with pytest.raises(imaplib.IMAP4.error):  # RFC 5267 §4.3.5: contexts only
            watcher.xatom("CANCELUPDATE", bad)
    with pytest.raises(imaplib.IMAP4.error):
        watcher.xatom("CANCELUPDATE")
    ok(watcher.xatom("CANCELUPDATE", f'"{second}"'))  # a BAD cancelled none
    ok(other.append("INBOX", None, None, message("m")))
    assert updates(watcher) == []


def test_contexts_end_when_the_mailbox_is_unselected(pair: Any) -> None:
    watcher, other, _ = pair
    tag, _ = search(watcher, "UID SEARCH", "RETURN", "(UPDATE)", "ALL")
    ok(watcher.select("INBOX"))  # RFC 5267 §4.3: updates cease
    ok(other.append("INBOX", None, None, message("n")))
    assert updates(watcher) == []
    with pytest.raises(imaplib.IMAP4.error):
        watcher.xatom("CANCELUPDATE", f'"{tag}"')
    search(watcher, "UID SEARCH", "RETURN", "(UPDATE)", "ALL")
    ok(watcher.unselect())
    ok(watcher.select("INBOX"))
    ok(other.append("INBOX", None, None, message("o")))
    assert updates(watcher) == []


def test_too_many_contexts_are_refused_with_noupdate(pair: Any) -> None:
    """RFC 5267 §4.3.1: beyond the limit the search is answered, with an untagged
    NO [NOUPDATE "tag"], and no update follows."""
    watcher, other, _ = pair
    tags = [search(watcher, "UID SEARCH", "RETURN", "(UPDATE)", "ALL")[0]
            for _ in range(MAX_CONTEXTS)]
    assert not watcher.untagged_responses.get("NO")
    tag, data = search(watcher, "UID SEARCH", "RETURN", "(COUNT UPDATE)", "ALL")
    assert data == b"UID COUNT 3"
    assert watcher.untagged_responses.pop("NO") == [
        f'[NOUPDATE "{tag}"] Too many contexts'.encode()]
    ok(other.append("INBOX", None, None, message("p")))
    told = updates(watcher)
    assert len(told) == MAX_CONTEXTS and not any(f'"{tag}"'.encode() in line for line in told)
    ok(watcher.xatom("CANCELUPDATE", f'"{tags[0]}"'))  # a place is free again
    search(watcher, "UID SEARCH", "RETURN", "(UPDATE)", "ALL")
    assert not watcher.untagged_responses.get("NO")


def test_update_order_and_tag_reuse_on_the_wire(environment: Any, imap: Any) -> None:  # noqa: F811
    """REMOVEFROM comes before the EXPUNGE it concerns and ADDTO after the EXISTS, so
    that the sequence numbers are those the client knows (RFC 5267 §4.3.3, §4.3.4);
    a tag in use by a context cannot start another (§4.3); updates reach an idling
    client."""
    person = fresh_person(environment)
    t, other = imap(person), imap(person)
    for i, subject in enumerate(("q1", "q2", "q3"), 1):
        append(other, f"b{i}", "INBOX", subject)
    t.run("a1 SELECT INBOX", *SELECT_FLAGS, "* 3 EXISTS", "* 3 RECENT",
          "* OK [UNSEEN 1] {*}", "* OK [UIDVALIDITY {#}] {*}", "* OK [UIDNEXT 4] {*}",
          "* OK [HIGHESTMODSEQ {#}] {*}", "a1 OK [READ-WRITE] SELECT completed")
    t.run("a2 SEARCH RETURN (ALL UPDATE) UNDELETED", '* ESEARCH (TAG "a2") ALL 1:3',
          "a2 OK SEARCH completed")
    t.run("a2 UID SEARCH RETURN (UPDATE) ALL", "a2 BAD {*}")
    other.run("b4 SELECT INBOX", *SELECT_FLAGS, "* 3 EXISTS", "* 0 RECENT",
              "* OK [UNSEEN 1] {*}", "* OK [UIDVALIDITY {#}] {*}", "* OK [UIDNEXT 4] {*}",
              "* OK [HIGHESTMODSEQ {#}] {*}", "b4 OK [READ-WRITE] SELECT completed")
    other.run("b5 STORE 2 +FLAGS.SILENT (\\Deleted)", "b5 OK STORE completed")
    other.run("b6 EXPUNGE", "* 2 EXPUNGE", "b6 OK EXPUNGE completed")
    append(other, "b7", "INBOX", "q4", updates=("* 3 EXISTS", "* 1 RECENT"))
    t.run("a3 NOOP", '* ESEARCH (TAG "a2") REMOVEFROM (0 2)', "* 2 EXPUNGE",
          "* 3 EXISTS", "* 2 RECENT", '* ESEARCH (TAG "a2") ADDTO (0 3)',
          "a3 OK NOOP completed")
    t.line("a4 IDLE")
    t.expect("+ {*}")
    other.run("b8 STORE 1 +FLAGS.SILENT (\\Deleted)", "b8 OK STORE completed")
    t.expect('* ESEARCH (TAG "a2") REMOVEFROM (0 1)',
             "* 1 FETCH (UID 1 FLAGS (\\Recent \\Deleted))")
    t.line("DONE")
    t.until("a4", "a4 OK IDLE terminated")
    t.run('a5 CANCELUPDATE "a2"', "a5 OK CANCELUPDATE completed")
    t.run('a6 CANCELUPDATE "a2"', "a6 BAD {*}")


def test_a_from_search_finds_an_address_written_with_comments(pair: Any) -> None:
    """RFC 5322 §3.4.1: CFWS around the parts of an addr-spec; a context on SEARCH FROM
    (evaluated again on the new messages only) finds the address as SEARCH does
    (test_conformance.py)."""
    watcher, other, _ = pair
    tag, data = search(watcher, "UID SEARCH", "RETURN", "(ALL UPDATE)", "FROM",
                       "user-from@domain.org")
    assert data == b"UID"
    ok(other.append("INBOX", None, None,
                    b"From: <user-from (comment)@ (comment) domain.org>\r\n"
                    b"To: x@domain.org\r\nSubject: cfws\r\n\r\nbody\r\n"))
    ok(other.append("INBOX", None, None, message("from Alice")))
    assert updates(watcher) == [f'(TAG "{tag}") UID ADDTO (0 4)'.encode()]
    _, data = search(watcher, "UID SEARCH", "RETURN", "(ALL)", "OR", "FROM",
                     "user-from@domain.org", "SUBJECT", "nothing")
    assert data == b"UID ALL 4"


def test_update_with_save_and_modseq(pair: Any) -> None:
    """No RFC forbids UPDATE beside SAVE or a MODSEQ criterion: SAVE keeps ``$`` as the
    command found it (RFC 5182 §2.1), the context moves on; a MODSEQ criterion is
    evaluated again on the messages whose MODSEQ moved (RFC 7162 §3.1.5)."""
    watcher, other, _ = pair
    tag, data = search(watcher, "UID SEARCH", "RETURN", "(SAVE UPDATE)", "UID", "2:3")
    assert data == b"UID"
    ok(other.uid("STORE", "2", "+FLAGS", "(\\Seen)"))
    assert updates(watcher) == []  # still UID 2, whatever its flags
    ok(other.uid("STORE", "3", "+FLAGS", "(\\Deleted)"))
    ok(other.expunge())
    assert updates(watcher) == [f'(TAG "{tag}") UID REMOVEFROM (0 3)'.encode()]
    assert ok(watcher.uid("SEARCH", "$")) == [b"2"]  # $ was 2:3, 3 is gone
    _, data = search(watcher, "UID SEARCH", "RETURN", "(ALL)", "MODSEQ", "1")
    top = int(data.rsplit(b" ", 1)[1])  # UID ALL 1:2 MODSEQ n
    modseq_tag, data = search(watcher, "UID SEARCH", "RETURN", "(UPDATE)", "MODSEQ",
                              str(top + 1))
    assert data == b"UID"
    ok(other.uid("STORE", "1", "+FLAGS", "(\\Flagged)"))
    assert updates(watcher) == [f'(TAG "{modseq_tag}") UID ADDTO (0 1)'.encode()]
