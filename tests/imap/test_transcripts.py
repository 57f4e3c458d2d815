"""One protocol transcript per extension the IMAP server advertises.

Each test talks to a running operator over a raw socket (transcript.py) and writes
the exchange as the RFCs write their examples: what the client sends, what the
server must answer, line by line. Values the server chooses (UIDVALIDITY, MODSEQ)
are placeholders, remembered where a later line must repeat them. Every test works
on a fresh person, so that none depends on another.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.imap.conftest import HOSPITAL, Account, fresh_org, fresh_person, grant
from tests.imap.transcript import Transcript

Opener = Callable[..., Transcript]

SELECT_FLAGS = (  # the first lines of every read-write SELECT
    "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Alerte)",
    "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Alerte \\*)] {*}",
)


def message(subject: str) -> bytes:
    return (b"From: Dr Alice <alice@ch-xyz.mssante.fr>\r\n"
            b"To: bob@ch-xyz.mssante.fr\r\n"
            b"Subject: " + subject.encode() + b"\r\n"
            b"Message-ID: <" + subject.encode() + b"@ch-xyz.mssante.fr>\r\n"
            b"\r\n"
            b"Bonjour.\r\n")


@pytest.fixture
def imap(environment: Any) -> Iterator[Opener]:
    """Opens transcripts (logged in when given an account) and closes them all at the
    end, failed or not: a connection left open would hold the server's shutdown."""
    opened: list[Transcript] = []

    def open_(account: Account | None = None, *, port: str = "imaps",
              greeting: str | None = "* OK [CAPABILITY {*}] {*}") -> Transcript:
        t = Transcript.open(environment, port=port, greeting=greeting)
        opened.append(t)
        if account is not None:
            t.run(f"L1 LOGIN {account.login} {account.password}",
                  "L1 OK [CAPABILITY {*}] Logged in")
        return t

    yield open_
    for t in opened:
        t.close()


def append(t: Transcript, tag: str, mailbox: str, subject: str, flags: str = "",
           updates: tuple[str, ...] = ()) -> None:
    """Put a message in a mailbox (LITERAL+, one round trip); ``updates`` are the
    untagged responses expected first (the EXISTS of the selected mailbox)."""
    body = message(subject)
    flag_list = f"({flags}) " if flags else ""
    t.send(f"{tag} APPEND {mailbox} {flag_list}{{{len(body)}+}}\r\n".encode() + body + b"\r\n")
    t.until(tag, *updates, f"{tag} OK [APPENDUID {{#}} {{#}}] APPEND completed")


# --------------------------------------------------------------------- IMAP4rev2


def test_imap4rev2_enabled(environment: Any, imap: Opener) -> None:
    """RFC 9051: after ENABLE IMAP4rev2, mailbox names are UTF-8, SELECT sends no RECENT
    (nor UNSEEN) but a LIST, and SEARCH answers ESEARCH."""
    t = imap(fresh_person(environment))
    t.run('a1 CREATE "R&AOk-sum&AOk-s"', "a1 OK CREATE completed")  # mUTF-7 before
    t.run('a2 LIST "" "R*"', '* LIST (\\HasNoChildren) "/" R&AOk-sum&AOk-s',
          "a2 OK LIST completed")
    t.run("a3 ENABLE IMAP4rev2", "* ENABLED IMAP4rev2", "a3 OK ENABLE completed")
    t.run('a4 LIST "" "R*"', '* LIST (\\HasNoChildren) "/" "Résumés"', "a4 OK LIST completed")
    append(t, "a5", '"Résumés"', "first")
    append(t, "a6", '"Résumés"', "second", "\\Seen")
    t.run('a7 SELECT "Résumés"',
          *SELECT_FLAGS,
          "* 2 EXISTS",
          "* OK [UIDVALIDITY {#uv}] {*}",
          "* OK [UIDNEXT 3] {*}",
          "* OK [HIGHESTMODSEQ {#}] {*}",
          '* LIST () "/" "Résumés"',
          "a7 OK [READ-WRITE] SELECT completed")
    t.run("a8 SEARCH UNSEEN", '* ESEARCH (TAG "a8") ALL 1', "a8 OK SEARCH completed")
    t.run("a9 UID SEARCH ALL", '* ESEARCH (TAG "a9") UID ALL 1:2', "a9 OK SEARCH completed")
    t.run("a10 SEARCH SUBJECT nowhere", '* ESEARCH (TAG "a10")', "a10 OK SEARCH completed")
    t.run("a11 FETCH 1:2 FLAGS", "* 1 FETCH (FLAGS ())", "* 2 FETCH (FLAGS (\\Seen))",
          "a11 OK FETCH completed")
    t.run('a12 STATUS "Résumés" (MESSAGES UNSEEN UIDVALIDITY)',
          '* STATUS "Résumés" (MESSAGES 2 UNSEEN 1 UIDVALIDITY {uv})',
          "a12 OK STATUS completed")


# ------------------------------------------------------------------------ ENABLE


def test_enable(environment: Any, imap: Opener) -> None:
    """RFC 5161: ENABLE only once authenticated; it lists what it enabled, ignores
    what the server does not know, and the session behaves accordingly."""
    person = fresh_person(environment)
    t = imap()
    t.run("a1 CAPABILITY", "re:\\* CAPABILITY IMAP4rev1 .*\\bENABLE\\b.*", "a1 OK {*}")
    t.run("a2 ENABLE CONDSTORE", "a2 BAD {*}")
    t.run(f"a3 LOGIN {person.login} {person.password}", "a3 OK [CAPABILITY {*}] Logged in")
    t.run("a4 ENABLE X-UNKNOWN", "* ENABLED", "a4 OK ENABLE completed")
    t.run("a5 ENABLE CONDSTORE X-UNKNOWN", "* ENABLED CONDSTORE", "a5 OK ENABLE completed")
    append(t, "a6", "INBOX", "enable")
    t.run("a7 SELECT INBOX",
          *SELECT_FLAGS,
          "* 1 EXISTS",
          "* 1 RECENT",
          "* OK [UNSEEN 1] {*}",
          "* OK [UIDVALIDITY {#}] {*}",
          "* OK [UIDNEXT 2] {*}",
          "* OK [HIGHESTMODSEQ {#}] {*}",
          "a7 OK [READ-WRITE] SELECT completed")
    # CONDSTORE is on: STORE reports the new MODSEQ without being asked
    t.run("a8 STORE 1 +FLAGS (\\Flagged)", "* 1 FETCH (FLAGS (\\Recent \\Flagged) MODSEQ ({#}))",
          "a8 OK STORE completed")


# -------------------------------------------------------------------------- IDLE


def test_idle(environment: Any, imap: Opener) -> None:
    """RFC 2177: while idling, a delivery, a flag change and an expunge made through
    another connection arrive as EXISTS, FETCH and EXPUNGE; DONE ends the IDLE."""
    person = fresh_person(environment)
    t = imap(person)
    other = imap(person)
    t.run("a1 SELECT INBOX", *SELECT_FLAGS, "* 0 EXISTS", "* 0 RECENT",
          "* OK [UIDVALIDITY {#}] {*}", "* OK [UIDNEXT 1] {*}", "* OK [HIGHESTMODSEQ {#}] {*}",
          "a1 OK [READ-WRITE] SELECT completed")
    t.line("a2 IDLE")
    t.expect("+ {*}")
    append(other, "b1", "INBOX", "pushed")
    t.expect("* 1 EXISTS")
    t.expect("* 1 RECENT")  # RFC 3501 §2.3.2: the first session told of it
    other.run("b2 SELECT INBOX", *SELECT_FLAGS, "* 1 EXISTS", "* 0 RECENT",
              "* OK [UNSEEN 1] {*}", "* OK [UIDVALIDITY {#}] {*}", "* OK [UIDNEXT 2] {*}",
              "* OK [HIGHESTMODSEQ {#}] {*}", "b2 OK [READ-WRITE] SELECT completed")
    other.run("b3 STORE 1 +FLAGS (\\Deleted)", "* 1 FETCH (FLAGS (\\Deleted))",
              "b3 OK STORE completed")
    t.expect("* 1 FETCH (UID 1 FLAGS (\\Recent \\Deleted))")
    other.run("b4 EXPUNGE", "* 1 EXPUNGE", "b4 OK EXPUNGE completed")
    t.expect("* 1 EXPUNGE")
    t.line("DONE")
    t.until("a2", "a2 OK IDLE terminated")
    append(other, "b5", "INBOX", "polled", updates=("* 1 EXISTS", "* 1 RECENT"))
    t.run("a3 NOOP", "* 1 EXISTS", "* 0 RECENT", "a3 OK NOOP completed")  # updates before the OK


# --------------------------------------------------------------------- NAMESPACE


def test_namespace(environment: Any, imap: Opener) -> None:
    """RFC 2342: a personal namespace "" and a shared one "Shared/", where the
    mailboxes a person is authorised on appear."""
    person, responsible = fresh_person(environment), fresh_person(environment)
    org = fresh_org(environment, responsible)
    grant(environment, org, person, "r")
    t = imap(person)
    t.run("a1 NAMESPACE", '* NAMESPACE (("" "/")) NIL (("Shared/" "/"))',
          "a1 OK NAMESPACE completed")
    t.run('a2 LIST "" %',
          '* LIST (\\HasNoChildren) "/" INBOX',
          '* LIST (\\HasNoChildren \\Archive) "/" Archive',
          '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
          '* LIST (\\HasNoChildren \\Sent) "/" Sent',
          '* LIST (\\Noselect \\HasChildren) "/" Shared',
          '* LIST (\\HasNoChildren \\Trash) "/" Trash',
          "a2 OK LIST completed")
    t.run('a3 LIST "Shared/" %', f'* LIST (\\Noselect \\HasChildren) "/" Shared/{org}',
          "a3 OK LIST completed")
    t.run(f'a4 LIST "" Shared/{org}/%',
          f'* LIST (\\HasNoChildren \\Archive) "/" Shared/{org}/Archive',
          f'* LIST (\\HasNoChildren \\Drafts) "/" Shared/{org}/Drafts',
          f'* LIST (\\HasNoChildren) "/" Shared/{org}/INBOX',
          f'* LIST (\\HasNoChildren \\Sent) "/" Shared/{org}/Sent',
          f'* LIST (\\HasNoChildren \\Trash) "/" Shared/{org}/Trash',
          "a4 OK LIST completed")
    t.run(f"a5 EXAMINE Shared/{org}/INBOX",
          "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Alerte)",
          "* OK [PERMANENTFLAGS ()] {*}",
          "* 0 EXISTS", "* 0 RECENT", "* OK [UIDVALIDITY {#}] {*}", "* OK [UIDNEXT 1] {*}",
          "* OK [HIGHESTMODSEQ {#}] {*}", "a5 OK [READ-ONLY] EXAMINE completed")


# ----------------------------------------------------------------------- UIDPLUS


def test_uidplus(environment: Any, imap: Opener) -> None:
    """RFC 4315: APPENDUID, COPYUID (destination UIDVALIDITY, source UIDs, new UIDs),
    and UID EXPUNGE removing only the \\Deleted messages named."""
    t = imap(fresh_person(environment))
    t.run("a1 STATUS INBOX (UIDVALIDITY)", "* STATUS INBOX (UIDVALIDITY {#uv})",
          "a1 OK STATUS completed")
    t.run("a2 STATUS Trash (UIDVALIDITY)", "* STATUS Trash (UIDVALIDITY {#trash})",
          "a2 OK STATUS completed")
    body = message("uidplus")
    t.line(f"a3 APPEND INBOX {{{len(body)}}}")
    t.expect("+ {*}")
    t.send(body + b"\r\n")
    t.until("a3", "a3 OK [APPENDUID {uv} 1] APPEND completed")
    t.line(f'a4 APPEND INBOX (\\Seen) "27-Nov-2026 02:53:41 +0100" {{{len(body)}}}')
    t.expect("+ {*}")
    t.send(body + b"\r\n")
    t.until("a4", "a4 OK [APPENDUID {uv} 2] APPEND completed")
    t.run("a5 SELECT INBOX", *SELECT_FLAGS, "* 2 EXISTS", "* 2 RECENT",
          "* OK [UNSEEN 1] {*}", "* OK [UIDVALIDITY {uv}] {*}", "* OK [UIDNEXT 3] {*}",
          "* OK [HIGHESTMODSEQ {#}] {*}", "a5 OK [READ-WRITE] SELECT completed")
    t.run("a6 COPY 1:2 Trash", "a6 OK [COPYUID {trash} 1:2 1:2] COPY completed")
    t.run("a7 UID COPY 2 Trash", "a7 OK [COPYUID {trash} 2 3] COPY completed")
    t.run("a8 STORE 1:2 +FLAGS.SILENT (\\Deleted)", "a8 OK STORE completed")
    t.run("a9 UID EXPUNGE 2", "* 2 EXPUNGE", "a9 OK EXPUNGE completed")
    t.run("a10 UID SEARCH DELETED", "* SEARCH 1", "a10 OK SEARCH completed")
    t.run("a11 STATUS Trash (MESSAGES UIDNEXT)", "* STATUS Trash (MESSAGES 3 UIDNEXT 4)",
          "a11 OK STATUS completed")
    # an APPEND to the selected mailbox: its EXISTS comes before the tagged reply
    t.line(f"a12 APPEND INBOX {{{len(body)}}}")
    t.expect("+ {*}")
    t.send(body + b"\r\n")
    t.until("a12", "* 2 EXISTS", "* 2 RECENT", "a12 OK [APPENDUID {uv} 3] APPEND completed")


# -------------------------------------------------------------------------- MOVE


def test_move(environment: Any, imap: Opener) -> None:
    """RFC 6851: MOVE answers COPYUID in an untagged OK, then the EXPUNGEs."""
    t = imap(fresh_person(environment))
    for n in range(1, 4):
        append(t, f"s{n}", "INBOX", f"move{n}")
    t.run("a1 STATUS Archive (UIDVALIDITY)", "* STATUS Archive (UIDVALIDITY {#arch})",
          "a1 OK STATUS completed")
    t.run("a2 SELECT INBOX", *SELECT_FLAGS, "* 3 EXISTS", "* 3 RECENT",
          "* OK [UNSEEN 1] {*}", "* OK [UIDVALIDITY {#}] {*}", "* OK [UIDNEXT 4] {*}",
          "* OK [HIGHESTMODSEQ {#}] {*}", "a2 OK [READ-WRITE] SELECT completed")
    t.run("a3 MOVE 2 Archive", "* OK [COPYUID {arch} 2 1] {*}", "* 2 EXPUNGE",
          "a3 OK MOVE completed")
    t.run("a4 UID MOVE 1,3 Archive", "* OK [COPYUID {arch} 1,3 2:3] {*}", "* 2 EXPUNGE",
          "* 1 EXPUNGE", "a4 OK MOVE completed")
    t.run("a5 MOVE 1 Archive", "a5 BAD {*}")  # no message 1 any more
    append(t, "s4", "INBOX", "move4", updates=("* 1 EXISTS", "* 1 RECENT"))
    t.run("a6 MOVE 1 Nowhere", "a6 NO [TRYCREATE] {*}")
    t.run("a7 STATUS Archive (MESSAGES UIDNEXT)", "* STATUS Archive (MESSAGES 3 UIDNEXT 4)",
          "a7 OK STATUS completed")


# ---------------------------------------------------------------------- UNSELECT


def test_unselect(environment: Any, imap: Opener) -> None:
    """RFC 3691: UNSELECT leaves the selected state without expunging (CLOSE would)."""
    t = imap(fresh_person(environment))
    append(t, "s1", "INBOX", "unselect", "\\Deleted")
    t.run("a1 UNSELECT", "a1 BAD {*}")
    t.run("a2 SELECT INBOX", *SELECT_FLAGS, "* 1 EXISTS", "* 1 RECENT",
          "* OK [UNSEEN 1] {*}", "* OK [UIDVALIDITY {#}] {*}", "* OK [UIDNEXT 2] {*}",
          "* OK [HIGHESTMODSEQ {#}] {*}", "a2 OK [READ-WRITE] SELECT completed")
    t.run("a3 UNSELECT", "a3 OK UNSELECT completed")
    t.run("a4 FETCH 1 FLAGS", "a4 BAD {*}")
    t.run("a5 STATUS INBOX (MESSAGES)", "* STATUS INBOX (MESSAGES 1)", "a5 OK STATUS completed")
    t.run("a6 EXAMINE INBOX", *SELECT_FLAGS[:1], "* OK [PERMANENTFLAGS ()] {*}",
          "* 1 EXISTS", "* 0 RECENT", "* OK [UNSEEN 1] {*}", "* OK [UIDVALIDITY {#}] {*}",
          "* OK [UIDNEXT 2] {*}", "* OK [HIGHESTMODSEQ {#}] {*}",
          "a6 OK [READ-ONLY] EXAMINE completed")
    t.run("a7 UNSELECT", "a7 OK UNSELECT completed")
    t.run("a8 STATUS INBOX (MESSAGES)", "* STATUS INBOX (MESSAGES 1)", "a8 OK STATUS completed")
    t.run("a9 SELECT INBOX", *SELECT_FLAGS, "* 1 EXISTS", "* 0 RECENT",
          "* OK [UNSEEN 1] {*}", "* OK [UIDVALIDITY {#}] {*}", "* OK [UIDNEXT 2] {*}",
          "* OK [HIGHESTMODSEQ {#}] {*}", "a9 OK [READ-WRITE] SELECT completed")
    t.run("a10 CLOSE", "a10 OK CLOSE completed")  # CLOSE expunges, silently
    t.run("a11 STATUS INBOX (MESSAGES)", "* STATUS INBOX (MESSAGES 0)",
          "a11 OK STATUS completed")


# ------------------------------------------------------------------- SPECIAL-USE


def test_special_use(environment: Any, imap: Opener) -> None:
    """RFC 6154: LIST shows \\Sent \\Drafts \\Trash \\Archive; the SPECIAL-USE
    selection option lists only those mailboxes."""
    t = imap(fresh_person(environment))
    t.run("a1 CREATE Projets", "a1 OK CREATE completed")
    t.run('a2 LIST "" *',
          '* LIST (\\HasNoChildren) "/" INBOX',
          '* LIST (\\HasNoChildren \\Archive) "/" Archive',
          '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
          '* LIST (\\HasNoChildren) "/" Projets',
          '* LIST (\\HasNoChildren \\Sent) "/" Sent',
          '* LIST (\\HasNoChildren \\Trash) "/" Trash',
          "a2 OK LIST completed")
    t.run('a3 LIST (SPECIAL-USE) "" *',
          '* LIST (\\HasNoChildren \\Archive) "/" Archive',
          '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
          '* LIST (\\HasNoChildren \\Sent) "/" Sent',
          '* LIST (\\HasNoChildren \\Trash) "/" Trash',
          "a3 OK LIST completed")
    t.run('a4 LIST "" (INBOX Sent) RETURN (SPECIAL-USE)',
          '* LIST (\\HasNoChildren) "/" INBOX',
          '* LIST (\\HasNoChildren \\Sent) "/" Sent',
          "a4 OK LIST completed")


# ----------------------------------------------------------------- LIST-EXTENDED


def test_list_extended(environment: Any, imap: Opener) -> None:
    """RFC 5258: the SUBSCRIBED selection, RETURN (CHILDREN SUBSCRIBED), several
    patterns in one command."""
    t = imap(fresh_person(environment))
    t.run("a1 CREATE Projets/Alpha", "a1 OK CREATE completed")
    t.run("a2 CREATE Projets/Beta", "a2 OK CREATE completed")
    t.run("d1 DELETE Projets", "d1 OK DELETE completed")  # CREATE made it; its children stay
    for n, name in enumerate(("Projets/Alpha", "Projets/Beta", "Trash"), start=1):
        t.run(f"u{n} UNSUBSCRIBE {name}", f"u{n} OK UNSUBSCRIBE completed")
    t.run("a3 SUBSCRIBE Projets/Alpha", "a3 OK SUBSCRIBE completed")
    t.run('a4 LSUB "" Projets/*', '* LSUB (\\HasNoChildren) "/" Projets/Alpha',
          "a4 OK LSUB completed")
    t.run('a5 LIST (SUBSCRIBED) "" *',
          '* LIST (\\HasNoChildren \\Subscribed) "/" INBOX',
          '* LIST (\\HasNoChildren \\Archive \\Subscribed) "/" Archive',
          '* LIST (\\HasNoChildren \\Drafts \\Subscribed) "/" Drafts',
          '* LIST (\\HasNoChildren \\Subscribed) "/" Projets/Alpha',
          '* LIST (\\HasNoChildren \\Sent \\Subscribed) "/" Sent',
          "a5 OK LIST completed")
    t.run('a6 LIST "" Projets* RETURN (CHILDREN SUBSCRIBED)',
          '* LIST (\\NonExistent \\HasChildren) "/" Projets',
          '* LIST (\\HasNoChildren \\Subscribed) "/" Projets/Alpha',
          '* LIST (\\HasNoChildren) "/" Projets/Beta',
          "a6 OK LIST completed")
    t.run('a7 LIST "" (Trash "Projets/%" INBOX)',
          '* LIST (\\HasNoChildren) "/" INBOX',
          '* LIST (\\HasNoChildren) "/" Projets/Alpha',
          '* LIST (\\HasNoChildren) "/" Projets/Beta',
          '* LIST (\\HasNoChildren \\Trash) "/" Trash',
          "a7 OK LIST completed")
    t.run('a8 LIST (SUBSCRIBED) "" Projets/% RETURN (CHILDREN)',
          '* LIST (\\HasNoChildren \\Subscribed) "/" Projets/Alpha',
          "a8 OK LIST completed")
    # RECURSIVEMATCH: a parent of a subscribed mailbox comes with CHILDINFO
    t.run('a9 LIST (SUBSCRIBED RECURSIVEMATCH) "" %',
          '* LIST (\\HasNoChildren \\Subscribed) "/" INBOX',
          '* LIST (\\HasNoChildren \\Archive \\Subscribed) "/" Archive',
          '* LIST (\\HasNoChildren \\Drafts \\Subscribed) "/" Drafts',
          '* LIST (\\NonExistent \\HasChildren) "/" Projets ("CHILDINFO" ("SUBSCRIBED"))',
          '* LIST (\\HasNoChildren \\Sent \\Subscribed) "/" Sent',
          "a9 OK LIST completed")
    t.run('a10 LIST (RECURSIVEMATCH) "" %', "a10 BAD {*}")


def test_children(environment: Any, imap: Opener) -> None:
    """RFC 3348 (in RFC 5258): \\HasChildren and \\HasNoChildren on every LIST."""
    t = imap(fresh_person(environment))
    t.run("a1 CREATE Projets", "a1 OK CREATE completed")
    t.run("a2 CREATE Projets/Alpha", "a2 OK CREATE completed")
    t.run("a3 CREATE Dossiers/2026", "a3 OK CREATE completed")  # RFC 9051 §6.3.4
    t.run('b1 LIST "" Dossiers', '* LIST (\\HasChildren) "/" Dossiers', "b1 OK LIST completed")
    t.run("b2 DELETE Dossiers", "b2 OK DELETE completed")  # now only a level
    t.run('a4 LIST "" %',
          '* LIST (\\HasNoChildren) "/" INBOX',
          '* LIST (\\HasNoChildren \\Archive) "/" Archive',
          '* LIST (\\Noselect \\HasChildren) "/" Dossiers',
          '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
          '* LIST (\\HasChildren) "/" Projets',
          '* LIST (\\HasNoChildren \\Sent) "/" Sent',
          '* LIST (\\HasNoChildren \\Trash) "/" Trash',
          "a4 OK LIST completed")
    t.run("a5 LIST Projets/ %", '* LIST (\\HasNoChildren) "/" Projets/Alpha',
          "a5 OK LIST completed")
    t.run("a6 DELETE Projets/Alpha", "a6 OK DELETE completed")
    t.run("a7 DELETE Dossiers/2026", "a7 OK DELETE completed")
    t.run('a8 LIST "" *s', '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
          '* LIST (\\HasNoChildren) "/" Projets', "a8 OK LIST completed")


# ------------------------------------------------------------------- LIST-STATUS


def test_list_status(environment: Any, imap: Opener) -> None:
    """RFC 5819: RETURN (STATUS (...)) puts a STATUS after the LIST of each
    selectable mailbox."""
    t = imap(fresh_person(environment))
    append(t, "s1", "INBOX", "one")
    append(t, "s2", "INBOX", "two")
    append(t, "s3", "Drafts", "draft", "\\Draft")
    t.run("a1 CREATE Projets/Alpha", "a1 OK CREATE completed")
    t.run('a2 LIST "" * RETURN (STATUS (MESSAGES UIDNEXT))',
          '* LIST (\\HasNoChildren) "/" INBOX',
          "* STATUS INBOX (MESSAGES 2 UIDNEXT 3)",
          '* LIST (\\HasNoChildren \\Archive) "/" Archive',
          "* STATUS Archive (MESSAGES 0 UIDNEXT 1)",
          '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
          "* STATUS Drafts (MESSAGES 1 UIDNEXT 2)",
          '* LIST (\\HasChildren) "/" Projets',
          "* STATUS Projets (MESSAGES 0 UIDNEXT 1)",
          '* LIST (\\HasNoChildren) "/" Projets/Alpha',
          "* STATUS Projets/Alpha (MESSAGES 0 UIDNEXT 1)",
          '* LIST (\\HasNoChildren \\Sent) "/" Sent',
          "* STATUS Sent (MESSAGES 0 UIDNEXT 1)",
          '* LIST (\\HasNoChildren \\Trash) "/" Trash',
          "* STATUS Trash (MESSAGES 0 UIDNEXT 1)",
          "a2 OK LIST completed")


# ------------------------------------------------------------------- STATUS=SIZE


def test_status_size(environment: Any, imap: Opener) -> None:
    """RFC 8438: STATUS SIZE is the total of the messages' RFC822.SIZE."""
    t = imap(fresh_person(environment))
    sizes = [len(message(subject)) for subject in ("size-a", "size-bb")]
    append(t, "s1", "INBOX", "size-a")
    append(t, "s2", "INBOX", "size-bb")
    t.run("a1 STATUS INBOX (SIZE MESSAGES)", f"* STATUS INBOX (SIZE {sum(sizes)} MESSAGES 2)",
          "a1 OK STATUS completed")
    t.run("a2 STATUS Sent (SIZE)", "* STATUS Sent (SIZE 0)", "a2 OK STATUS completed")
    t.run("a3 SELECT INBOX", *SELECT_FLAGS, "* 2 EXISTS", "* 2 RECENT",
          "* OK [UNSEEN 1] {*}", "* OK [UIDVALIDITY {#}] {*}", "* OK [UIDNEXT 3] {*}",
          "* OK [HIGHESTMODSEQ {#}] {*}", "a3 OK [READ-WRITE] SELECT completed")
    t.run("a4 FETCH 1:2 RFC822.SIZE", f"* 1 FETCH (RFC822.SIZE {sizes[0]})",
          f"* 2 FETCH (RFC822.SIZE {sizes[1]})", "a4 OK FETCH completed")


# ----------------------------------------------------------------------- ESEARCH


def test_esearch_and_searchres(environment: Any, imap: Opener) -> None:
    """RFC 4731 RETURN (MIN MAX COUNT ALL), RFC 5182 SAVE and `$`."""
    t = imap(fresh_person(environment))
    for n in range(1, 6):
        append(t, f"s{n}", "INBOX", f"esearch{n}", "\\Flagged" if n in (2, 4) else "")
    t.run("a1 SELECT INBOX", *SELECT_FLAGS, "* 5 EXISTS", "* 5 RECENT",
          "* OK [UNSEEN 1] {*}", "* OK [UIDVALIDITY {#}] {*}", "* OK [UIDNEXT 6] {*}",
          "* OK [HIGHESTMODSEQ {#}] {*}", "a1 OK [READ-WRITE] SELECT completed")
    t.run("a2 SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED",
          '* ESEARCH (TAG "a2") MIN 2 MAX 4 COUNT 2 ALL 2,4', "a2 OK SEARCH completed")
    t.run("a3 UID SEARCH RETURN (COUNT) ALL", '* ESEARCH (TAG "a3") UID COUNT 5',
          "a3 OK SEARCH completed")
    t.run("a4 SEARCH RETURN () UNFLAGGED", '* ESEARCH (TAG "a4") ALL 1,3,5',
          "a4 OK SEARCH completed")
    t.run("a5 SEARCH RETURN (MIN MAX) SUBJECT nowhere", '* ESEARCH (TAG "a5")',
          "a5 OK SEARCH completed")
    # SAVE alone answers nothing; `$` then names what was saved
    t.run("a6 SEARCH RETURN (SAVE) FLAGGED", "a6 OK SEARCH completed")
    t.run("a7 FETCH $ (UID FLAGS)", "* 2 FETCH (UID 2 FLAGS (\\Recent \\Flagged))",
          "* 4 FETCH (UID 4 FLAGS (\\Recent \\Flagged))", "a7 OK FETCH completed")
    t.run("a8 UID SEARCH UID $ NOT 4", "* SEARCH 2", "a8 OK SEARCH completed")
    # SAVE with MIN keeps only the minimum
    t.run("a9 UID SEARCH RETURN (SAVE MIN) UNFLAGGED", '* ESEARCH (TAG "a9") UID MIN 1',
          "a9 OK SEARCH completed")
    t.run("a10 UID STORE $ +FLAGS.SILENT (\\Seen)", "a10 OK STORE completed")
    t.run("a11 SEARCH SEEN", "* SEARCH 1", "a11 OK SEARCH completed")


# ---------------------------------------------------------------------- LITERAL+


def test_literal_plus(environment: Any, imap: Opener) -> None:
    """RFC 7888: a non-synchronising literal {n+} is read at once, the server sends
    no continuation request."""
    person = fresh_person(environment)
    t = imap()
    login, password = person.login.encode(), person.password.encode()
    t.send(b"a1 LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(login), login, len(password),
                                                       password))
    t.until("a1", "a1 OK [CAPABILITY {*}] Logged in")
    body = message("literal-plus")
    t.send(b"a2 APPEND INBOX (\\Seen) {%d+}\r\n%s\r\n" % (len(body), body))
    t.until("a2", "a2 OK [APPENDUID {#} 1] APPEND completed")
    t.send(b"a3 SELECT {5+}\r\nINBOX\r\n")
    t.until("a3", *SELECT_FLAGS, "* 1 EXISTS", "* 1 RECENT",
            "* OK [UIDVALIDITY {#}] {*}", "* OK [UIDNEXT 2] {*}",
            "* OK [HIGHESTMODSEQ {#}] {*}", "a3 OK [READ-WRITE] SELECT completed")
    t.run("a4 FETCH 1 BODY.PEEK[]",
          f"* 1 FETCH (BODY[] {{{len(body)}}}\r\n{body.decode()})", "a4 OK FETCH completed")
    # a non-synchronising literal over the limit cannot be refused unread: the
    # server answers BAD and hangs up (RFC 7888 §4)
    limit = environment.service(HOSPITAL).config.operator.max_message_size
    t.line(f"a5 APPEND INBOX {{{limit + 1}+}}")
    t.expect("a5 BAD [TOOBIG] {*}", "* BYE {*}")
    assert t.file.read() == b""


# ---------------------------------------------------------------------------- ID


def test_id(environment: Any, imap: Opener) -> None:
    """RFC 2971: ID in any state; the server tells its name and version."""
    t = imap()
    t.run('a1 ID ("name" "transcripts" "version" "1.0")',
          '* ID ("name" "mssante" "version" "{#}.{#}.{#}" "vendor" "mssante")',
          "a1 OK ID completed")
    person = fresh_person(environment)
    t.run(f"a2 LOGIN {person.login} {person.password}", "a2 OK [CAPABILITY {*}] Logged in")
    t.run("a3 ID NIL", '* ID ("name" "mssante" "version" "{*}" "vendor" "mssante")',
          "a3 OK ID completed")


# ------------------------------------------------------------------- APPENDLIMIT


def test_appendlimit(environment: Any, imap: Opener) -> None:
    """RFC 7889: the capability and STATUS (APPENDLIMIT) tell the limit; an APPEND
    over it with a synchronising literal is refused with TOOBIG before the client
    sends it."""
    person = fresh_person(environment)
    t = imap()
    t.run(f"a1 LOGIN {person.login} {person.password}",
          "re:a1 OK \\[CAPABILITY .*\\bAPPENDLIMIT=(?P<limit>\\d+)\\b.*\\] Logged in")
    limit = int(t.vars["limit"])
    assert limit == environment.service(HOSPITAL).config.operator.max_message_size
    t.line(f"a2 APPEND INBOX {{{limit + 1}}}")
    t.expect("a2 NO [TOOBIG] {*}")
    t.run("a3 STATUS INBOX (MESSAGES APPENDLIMIT)",
          f"* STATUS INBOX (MESSAGES 0 APPENDLIMIT {limit})", "a3 OK STATUS completed")
    body = message("small-enough")
    t.line(f"a4 APPEND INBOX {{{len(body)}}}")
    t.expect("+ {*}")
    t.send(body + b"\r\n")
    t.until("a4", "a4 OK [APPENDUID {#} 1] APPEND completed")


# --------------------------------------------------------------------- CONDSTORE


def test_condstore(environment: Any, imap: Opener) -> None:
    """RFC 7162 §3.1: SELECT (CONDSTORE), FETCH MODSEQ, FETCH (CHANGEDSINCE n) and
    STORE (UNCHANGEDSINCE n) with MODIFIED."""
    t = imap(fresh_person(environment))
    for n in range(1, 4):
        append(t, f"s{n}", "INBOX", f"condstore{n}")
    t.run("a1 SELECT INBOX (CONDSTORE)", *SELECT_FLAGS, "* 3 EXISTS", "* 3 RECENT",
          "* OK [UNSEEN 1] {*}", "* OK [UIDVALIDITY {#}] {*}", "* OK [UIDNEXT 4] {*}",
          "* OK [HIGHESTMODSEQ {#m0}] {*}", "a1 OK [READ-WRITE] SELECT completed")
    m0 = int(t.vars["m0"])
    t.run("a2 FETCH 1:3 (FLAGS MODSEQ)",
          "* 1 FETCH (FLAGS (\\Recent) MODSEQ ({#s1}))",
          "* 2 FETCH (FLAGS (\\Recent) MODSEQ ({#s2}))",
          "* 3 FETCH (FLAGS (\\Recent) MODSEQ ({m0}))", "a2 OK FETCH completed")
    assert int(t.vars["s1"]) < int(t.vars["s2"]) < m0  # one MODSEQ per APPEND
    t.run("a3 STORE 2 +FLAGS (\\Seen)", "* 2 FETCH (FLAGS (\\Recent \\Seen) MODSEQ ({#m1}))",
          "a3 OK STORE completed")
    assert int(t.vars["m1"]) > m0
    t.run(f"a4 FETCH 1:* (FLAGS) (CHANGEDSINCE {m0})",
          "* 2 FETCH (FLAGS (\\Recent \\Seen) MODSEQ ({m1}))", "a4 OK FETCH completed")
    t.run(f"a5 UID FETCH 1:* (FLAGS) (CHANGEDSINCE {t.vars['m1']})", "a5 OK FETCH completed")
    t.run(f"a6 STORE 1:3 (UNCHANGEDSINCE {m0}) +FLAGS (\\Flagged)",
          "* 1 FETCH (FLAGS (\\Recent \\Flagged) MODSEQ ({#m2}))",
          "* 3 FETCH (FLAGS (\\Recent \\Flagged) MODSEQ ({m2}))",
          "a6 OK [MODIFIED 2] {*}")
    t.run(f"a7 UID STORE 1:3 (UNCHANGEDSINCE {t.vars['m2']}) +FLAGS.SILENT (\\Answered)",
          "* 1 FETCH (UID 1 MODSEQ ({#m3}))",
          "* 2 FETCH (UID 2 MODSEQ ({m3}))",
          "* 3 FETCH (UID 3 MODSEQ ({m3}))",
          "a7 OK STORE completed")
    t.run(f"a8 SEARCH MODSEQ {t.vars['m3']}", "* SEARCH 1 2 3 (MODSEQ {m3})",
          "a8 OK SEARCH completed")
    t.run("a9 STATUS Sent (HIGHESTMODSEQ MESSAGES)",
          "* STATUS Sent (HIGHESTMODSEQ {#} MESSAGES 0)", "a9 OK STATUS completed")


# ----------------------------------------------------------------------- QRESYNC


def test_qresync(environment: Any, imap: Opener) -> None:
    """RFC 7162 §3.2: ENABLE QRESYNC, SELECT (QRESYNC (uidvalidity modseq)) with
    VANISHED (EARLIER) and the changed messages, UID FETCH (CHANGEDSINCE n VANISHED)."""
    t = imap(fresh_person(environment))
    for n in range(1, 5):
        append(t, f"s{n}", "INBOX", f"qresync{n}")
    t.run("a1 ENABLE QRESYNC", "* ENABLED QRESYNC", "a1 OK ENABLE completed")
    t.run("a2 SELECT INBOX", *SELECT_FLAGS, "* 4 EXISTS", "* 4 RECENT",
          "* OK [UNSEEN 1] {*}", "* OK [UIDVALIDITY {#uv}] {*}", "* OK [UIDNEXT 5] {*}",
          "* OK [HIGHESTMODSEQ {#m0}] {*}", "a2 OK [READ-WRITE] SELECT completed")
    t.run("a3 STORE 2 +FLAGS (\\Seen)", "* 2 FETCH (UID 2 FLAGS (\\Recent \\Seen) MODSEQ ({#m1}))",
          "a3 OK STORE completed")
    t.run("a4 UID STORE 3 +FLAGS.SILENT (\\Deleted)", "* 3 FETCH (UID 3 MODSEQ ({#}))",
          "a4 OK STORE completed")
    t.run("a5 UID EXPUNGE 3", "* VANISHED 3", "a5 OK [HIGHESTMODSEQ {#m2}] EXPUNGE completed")
    t.run(f"a6 SELECT INBOX (QRESYNC ({t.vars['uv']} {t.vars['m0']}))",
          "* OK [CLOSED] {*}",
          *SELECT_FLAGS, "* 3 EXISTS", "* 0 RECENT",
          "* OK [UNSEEN 1] {*}", "* OK [UIDVALIDITY {uv}] {*}", "* OK [UIDNEXT 5] {*}",
          "* OK [HIGHESTMODSEQ {m2}] {*}",
          "* VANISHED (EARLIER) 3",
          "* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ ({m1}))",
          "a6 OK [READ-WRITE] SELECT completed")
    # known UIDs (RFC 7162 §3.2.5): only those the client names are reported
    t.run(f"a7 SELECT INBOX (QRESYNC ({t.vars['uv']} {t.vars['m0']} 1:2,4))",
          "* OK [CLOSED] {*}",
          *SELECT_FLAGS, "* 3 EXISTS", "* 0 RECENT",
          "* OK [UNSEEN 1] {*}", "* OK [UIDVALIDITY {uv}] {*}", "* OK [UIDNEXT 5] {*}",
          "* OK [HIGHESTMODSEQ {m2}] {*}",
          "* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ ({m1}))",
          "a7 OK [READ-WRITE] SELECT completed")
    t.run(f"a8 UID FETCH 1:* (FLAGS) (CHANGEDSINCE {t.vars['m0']} VANISHED)",
          "* VANISHED (EARLIER) 3",
          "* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ ({m1}))",
          "a8 OK FETCH completed")
    t.run(f"a9 UID FETCH 1:* (FLAGS) (CHANGEDSINCE {t.vars['m1']} VANISHED)",
          "* VANISHED (EARLIER) 3", "a9 OK FETCH completed")
    # a wrong UIDVALIDITY: the client must resynchronise fully, nothing is reported
    t.run(f"a10 EXAMINE INBOX (QRESYNC (1 {t.vars['m0']}))",
          "* OK [CLOSED] {*}", "* FLAGS ({*})", "* OK [PERMANENTFLAGS ()] {*}", "* 3 EXISTS",
          "* 0 RECENT", "* OK [UNSEEN 1] {*}", "* OK [UIDVALIDITY {uv}] {*}",
          "* OK [UIDNEXT 5] {*}", "* OK [HIGHESTMODSEQ {m2}] {*}",
          "a10 OK [READ-ONLY] EXAMINE completed")


def test_qresync_held_expunges_lower_highestmodseq(environment: Any, imap: Opener) -> None:
    """RFC 7162 (RFC 5162's verified errata 1810): an expunge by someone else waits
    during STORE by sequence number, whose FETCH carries a MODSEQ past it; the server
    then sends a HIGHESTMODSEQ below the expunge, so that a client that loses the
    connection resynchronises from before it."""
    person = fresh_person(environment)
    t = imap(person)
    for n in range(1, 4):
        append(t, f"s{n}", "INBOX", f"held{n}")
    t.run("a1 ENABLE QRESYNC", "* ENABLED QRESYNC", "a1 OK ENABLE completed")
    t.run("a2 SELECT INBOX", *SELECT_FLAGS, "* 3 EXISTS", "* 3 RECENT",
          "* OK [UNSEEN 1] {*}", "* OK [UIDVALIDITY {#}] {*}", "* OK [UIDNEXT 4] {*}",
          "* OK [HIGHESTMODSEQ {#m0}] {*}", "a2 OK [READ-WRITE] SELECT completed")
    store = environment.service(HOSPITAL).store
    inbox = environment.runner.call(store.folders.get(person.address, "INBOX"))
    environment.runner.call(store.folders.store_flags(inbox.id, [3], "+", ["\\Deleted"]))
    assert environment.runner.call(store.folders.expunge(inbox.id)) == [3]
    expunged_at = environment.runner.call(store.folders.get(person.address, "INBOX")
                                          ).highestmodseq
    t.run("a3 STORE 1 +FLAGS (\\Flagged)",
          "* 1 FETCH (UID 1 FLAGS (\\Recent \\Flagged) MODSEQ ({#m1}))",
          "* OK [HIGHESTMODSEQ {m0}] Expunges held back", "a3 OK STORE completed")
    assert int(t.vars["m0"]) < expunged_at < int(t.vars["m1"])
    t.run("a4 FETCH 3 (FLAGS)", "* 3 FETCH (FLAGS (\\Recent))",  # as the session still sees it
          "* OK [HIGHESTMODSEQ {m0}] Expunges held back", "a4 OK FETCH completed")
    t.run("a5 NOOP", "* VANISHED 3", "a5 OK NOOP completed")  # now it may be said
    t.run("a6 STORE 1 -FLAGS (\\Flagged)", "* 1 FETCH (UID 1 FLAGS (\\Recent) MODSEQ ({#}))",
          "a6 OK STORE completed")  # nothing held back any more


# --------------------------------------------------------------------------- ACL


def test_acl(environment: Any, imap: Opener) -> None:
    """RFC 4314: MYRIGHTS on one's own INBOX and on a shared read-only mailbox, GETACL,
    LISTRIGHTS; SETACL and DELETEACL are refused (rights come from the operator)."""
    person, responsible = fresh_person(environment), fresh_person(environment)
    org = fresh_org(environment, responsible)
    grant(environment, org, person, "r")
    t = imap(person)
    t.run("a1 MYRIGHTS INBOX", "* MYRIGHTS INBOX lrswipkxtea", "a1 OK MYRIGHTS completed")
    t.run(f"a2 MYRIGHTS Shared/{org}/INBOX", f"* MYRIGHTS Shared/{org}/INBOX lr",
          "a2 OK MYRIGHTS completed")
    t.run("a3 GETACL INBOX", f"* ACL INBOX {person.login} lrswipkxtea",
          "a3 OK GETACL completed")
    t.run(f"a4 GETACL Shared/{org}/INBOX", "a4 NO [NOPERM] {*}")
    t.run(f"a5 SETACL INBOX {responsible.login} lr", "a5 NO [NOPERM] {*}")
    t.run(f"a6 DELETEACL INBOX {responsible.login}", "a6 NO [NOPERM] {*}")
    t.run(f"a7 LISTRIGHTS INBOX {responsible.login}",
          f'* LISTRIGHTS INBOX {responsible.login} "" l r s w i p k x t e a',
          "a7 OK LISTRIGHTS completed")
    t.run(f"a8 MYRIGHTS Shared/{org}/Nowhere", "a8 NO [NONEXISTENT] {*}")
    boss = imap(responsible)
    boss.run(f"b1 GETACL Shared/{org}/INBOX",
             f"re:\\* ACL Shared/{org}/INBOX (?=.*\\b{responsible.login} lrswipkxtea\\b)"
             f"(?=.*\\b{person.login} lr(\\s|$)).*",
             "b1 OK GETACL completed")


# ----------------------------------------------------------------------- SASL-IR


def test_sasl_ir(environment: Any, imap: Opener) -> None:
    """RFC 4959: AUTHENTICATE PLAIN with the initial response on the command line,
    no continuation; without it, an empty continuation first."""
    person = fresh_person(environment)
    good = base64.b64encode(f"\0{person.login}\0{person.password}".encode()).decode()
    wrong = base64.b64encode(f"\0{person.login}\0nope".encode()).decode()
    t = imap()
    t.run(f"a1 AUTHENTICATE PLAIN {wrong}", "a1 NO [AUTHENTICATIONFAILED] {*}")
    t.run(f"a2 AUTHENTICATE PLAIN {good}", "a2 OK [CAPABILITY {*}] Logged in")
    t.run("a3 SELECT INBOX", *SELECT_FLAGS, "* 0 EXISTS", "* 0 RECENT",
          "* OK [UIDVALIDITY {#}] {*}", "* OK [UIDNEXT 1] {*}", "* OK [HIGHESTMODSEQ {#}] {*}",
          "a3 OK [READ-WRITE] SELECT completed")
    u = imap()
    u.line("b1 AUTHENTICATE PLAIN")
    u.expect("+ ")
    u.line(good)
    u.until("b1", "b1 OK [CAPABILITY {*}] Logged in")
    v = imap()
    v.line("c1 AUTHENTICATE PLAIN")
    v.expect("+ ")
    v.line("*")
    v.until("c1", "c1 BAD {*}")


# ---------------------------------------------------------------------- STARTTLS


def test_starttls(environment: Any, imap: Opener) -> None:
    """RFC 9051 §6.2.1: port 143 offers STARTTLS and refuses LOGIN before TLS
    (LOGINDISABLED, PRIVACYREQUIRED); after TLS, AUTH=PLAIN and LOGIN work."""
    person = fresh_person(environment)
    t = imap(port="imap", greeting="re:\\* OK \\[CAPABILITY (?P<caps>[^]]*)\\] .*")
    assert {"STARTTLS", "LOGINDISABLED"} <= set(t.vars["caps"].split())
    assert "AUTH=PLAIN" not in t.vars["caps"].split()
    t.run(f"a1 LOGIN {person.login} {person.password}", "a1 NO [PRIVACYREQUIRED] {*}")
    plain = base64.b64encode(f"\0{person.login}\0{person.password}".encode()).decode()
    t.run(f"a2 AUTHENTICATE PLAIN {plain}", "a2 NO [PRIVACYREQUIRED] {*}")
    t.run("a3 SELECT INBOX", "a3 BAD {*}")
    t.run("a4 STARTTLS", "a4 OK {*}")
    t.starttls()
    t.run("a5 CAPABILITY", "re:\\* CAPABILITY (?P<tls_caps>.*)", "a5 OK CAPABILITY completed")
    caps = set(t.vars["tls_caps"].split())
    assert {"AUTH=PLAIN", "IMAP4rev2"} <= caps
    assert not caps & {"STARTTLS", "LOGINDISABLED"}
    t.run("a6 STARTTLS", "a6 BAD {*}")
    t.run(f"a7 LOGIN {person.login} {person.password}", "a7 OK [CAPABILITY {*}] Logged in")


def test_starttls_command_injection(environment: Any, imap: Opener) -> None:
    """A command pipelined after STARTTLS in the same plaintext packet must not run
    inside the TLS session (CVE-2011-0411 family)."""
    t = imap(port="imap")
    t.send(b"a1 STARTTLS\r\na2 CAPABILITY\r\n")
    t.expect("a1 OK {*}")
    with pytest.raises((ssl.SSLError, ConnectionError)):  # the server hangs up
        t.starttls()
