"""SORT, THREAD, ESORT and PARTIAL: the base subject and the threading algorithms on
their own, then the commands against the running operator with imaplib.

RFC 5256 (SORT and THREAD), RFC 5957 (DISPLAYFROM, DISPLAYTO), RFC 5267 §3 (ESORT),
RFC 9394 (PARTIAL).
"""

from __future__ import annotations

import imaplib
import re
from typing import Any

import pytest

from mssante.content.basesubject import base_subject
from mssante.content.sortkeys import SortKeys, decode, encode, keys_of
from mssante.imap.thread import Item, render, thread
from tests.imap.conftest import HOSPITAL, fresh_person, login

# --- base subject, RFC 5256 §2.1 -------------------------------------------------------


@pytest.mark.parametrize(("subject", "base", "reply"), [
    ("Hello", "hello", False),
    ("Re: Hello", "hello", True),  # (3) subj-refwd
    ("RE: re: FWD: fw: Hello", "hello", True),  # (5) repeated
    ("Re[2]: Hello", "hello", True),  # subj-refwd with a subj-blob
    ("[list] Re: Hello", "hello", True),  # *subj-blob subj-refwd
    ("[list] Hello", "hello", False),  # (4) a leading blob
    ("[list]", "[list]", False),  # (4) not removed when nothing would be left
    ("Hello (fwd)", "hello", True),  # (2) subj-trailer
    ("Hello  (FWD) (fwd) ", "hello", True),
    ("[Fwd: Re: Hello]", "hello", True),  # (6) subj-fwd, then again from (2)
    ("[fwd: [fwd: Hello]]", "hello", True),
    ("  Hello\t  world  ", "hello world", False),  # (1) white space
    ("Ré: Hello", "ré: hello", False),  # only "re" is a leader
    ("", "", False),
])
def test_base_subject(subject: str, base: str, reply: bool) -> None:
    assert base_subject(subject) == (base, reply)


def test_sort_keys_read_the_header_once_and_keep_in_the_store() -> None:
    header = (b"From: =?utf-8?q?Ren=C3=A9?= Durand <Rene.Durand@ch-xyz.mssante.fr>\r\n"
              b"To: <Bob@ch-xyz.mssante.fr>, carol@ch-xyz.mssante.fr\r\n"
              b"Cc: service: Cl@x.fr;\r\n"
              b"Subject: =?utf-8?q?Re=3A_R=C3=A9sultats?=\r\n"
              b"Date: Mon, 7 Dec 2026 10:00:00 +0100\r\n"
              b"Message-ID: <m3@x.fr>\r\nReferences: <m1@x.fr>\r\n <m2@x.fr>\r\n"
              b"In-Reply-To: <m2@x.fr>\r\n\r\nbody\r\n")
    keys = keys_of(header)
    assert keys == SortKeys("résultats", True, "rene.durand", "bob", "cl",
                            "rené durand", "bob@ch-xyz.mssante.fr", 1796634000.0,
                            "m3@x.fr", ("m1@x.fr", "m2@x.fr"))
    assert decode(encode(keys)) == keys
    assert decode("[0]") is None and decode(None) is None  # computed again
    # RFC 5256 §3 DATE: no readable Date, no sent date (SORT uses INTERNALDATE)
    assert keys_of(b"Date: yesterday\r\n\r\n").sent is None
    # In-Reply-To only when References has no message id
    assert keys_of(b"In-Reply-To: <a@b> <c@d>\r\n\r\n").references == ("a@b",)


# --- threading, RFC 5256 §3 ------------------------------------------------------------


def _item(number: int, message_id: str | None, refs: tuple[str, ...] = (),
          subject: str = "s", reply: bool = False, sent: float | None = None) -> Item:
    keys = SortKeys(subject, reply, "", "", "", "", "", float(number) if sent is None
                    else sent, message_id, refs)
    return Item(number, keys, 0.0, number)


def test_references_links_by_message_ids() -> None:
    items = [_item(1, "a@x"), _item(2, "b@x", ("a@x",)), _item(3, "c@x", ("a@x",)),
             _item(4, "d@x", ("a@x", "c@x")),
             _item(5, "e@x", subject="other"),
             # (3) a dummy parent at the root with several children stays
             _item(6, "f@x", ("gone@x",), subject="t"),
             _item(7, "g@x", ("gone@x",), subject="t")]
    assert render(thread("REFERENCES", items)) == "(1 (2)(3 4))(5)((6)(7))"


def test_references_gathers_by_subject_and_sorts_by_date() -> None:
    items = [
        # (5C) a reply without references joins the original of the same subject
        _item(1, "a@x", subject="bilan"),
        _item(2, "b@x", subject="bilan", reply=True),
        # (5C) two originals with the same subject: under a new dummy
        _item(3, "c@x", subject="rdv"),
        _item(4, "d@x", subject="rdv"),
        # (1B) the message's own references win over a parent set before
        _item(5, "e@x", ("z@x", "f@x"), subject="x", sent=50.0),
        _item(6, "f@x", subject="y", sent=0.5),
        # (6) siblings by sent date, not by number
        _item(7, "h@x", ("f@x",), subject="y", sent=40.0),
        # duplicate Message-ID: treated as unique
        _item(8, "a@x", subject="solo"),
        # no Message-ID
        _item(9, None, subject="alone"),
    ]
    assert render(thread("REFERENCES", items)) == \
        "(6 (7)(5))(1 2)((3)(4))(8)(9)"


def test_references_refuses_loops() -> None:
    # 1 names 2 as its parent; 2 naming 1 as its own would make a loop: refused
    items = [_item(1, "a@x", ("b@x",)), _item(2, "b@x", ("a@x",))]
    assert render(thread("REFERENCES", items)) == "(2 1)"


def test_orderedsubject() -> None:
    # RFC 5256 §3 ORDEREDSUBJECT: by base subject then date; the first is the parent
    items = [_item(1, None, subject="b", sent=3), _item(2, None, subject="a", sent=2),
             _item(3, None, subject="b", sent=1), _item(4, None, subject="a", sent=4),
             _item(5, None, subject="b", sent=5), _item(6, None, subject="c", sent=6)]
    assert render(thread("ORDEREDSUBJECT", items)) == "(3 (1)(5))(2 4)(6)"


def test_a_long_reply_chain_is_threaded_without_recursion() -> None:
    chain = [_item(1, "m1@x")] + [_item(i, f"m{i}@x", (f"m{i - 1}@x",))
                                  for i in range(2, 10_001)]
    assert render(thread("REFERENCES", chain)) == \
        "(" + " ".join(str(i) for i in range(1, 10_001)) + ")"


# --- against the server ------------------------------------------------------------------


def ok(result: tuple[str, list[Any]]) -> list[Any]:
    typ, data = result
    assert typ == "OK", data
    return data


def mail(subject: str, sender: str, to: str, date: str, *, cc: str = "",
         message_id: str = "", references: str = "", body: str = "x") -> bytes:
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Date: {date}"]
    if cc:
        lines.append(f"Cc: {cc}")
    if message_id:
        lines.append(f"Message-ID: <{message_id}>")
    if references:
        lines.append(f"References: {references}")
    return ("\r\n".join(lines) + f"\r\n\r\n{body}\r\n").encode()


def raw(client: imaplib.IMAP4, command: str, *args: str) -> tuple[list[Any], list[Any]]:
    """A command imaplib does not know how to ask: (its untagged ESEARCH, tagged data)."""
    client.untagged_responses.pop("ESEARCH", None)
    typ, data = client._simple_command(command, *args)
    assert typ == "OK", data
    return client.untagged_responses.pop("ESEARCH", []), data


@pytest.fixture(scope="module")
def sorted_folder(environment: Any) -> Any:
    """Five messages whose every sort key differs (UIDs 1 to 5)."""
    person = fresh_person(environment)
    client = login(environment, person)
    messages = [  # subject, from, to, cc, Date, INTERNALDATE, body size
        ("Re: Bilan", "Zoe <zoe@a.fr>", "bob@b.fr", "x@c.fr",
         "Mon, 7 Dec 2026 09:00:00 +0000", "01-Dec-2026 10:00:00 +0000", 1000),
        ("Analyse", '"Albert" <yves@a.fr>', "Alice <zed@b.fr>", "b@c.fr",
         "Mon, 7 Dec 2026 08:00:00 -0300", "03-Dec-2026 10:00:00 +0000", 10),
        ("[service] Compte rendu", "marc@a.fr", "Yann <al@b.fr>", "",
         "Sun, 6 Dec 2026 23:00:00 +0000", "02-Dec-2026 10:00:00 +0000", 600),
        ("Fwd: bilan", "bea@a.fr", "eve@b.fr", "a@c.fr",
         "not a date", "05-Dec-2026 10:00:00 +0000", 300),
        ("Examen", "Chloe <claire@a.fr>", "Dan <dan@b.fr>", "z@c.fr",
         "Tue, 8 Dec 2026 12:00:00 +0100", "04-Dec-2026 10:00:00 +0000", 100),
    ]
    for subject, sender, to, cc, date, internal, size in messages:
        ok(client.append("INBOX", None, f'"{internal}"',
                         mail(subject, sender, to, date, cc=cc, body="y" * size)))
    ok(client.select("INBOX"))
    yield client, person
    client.logout()


def sort(client: imaplib.IMAP4, criteria: str, *search: str, uid: bool = False) -> list[int]:
    if uid:
        data = ok(client.uid("SORT", criteria, "UTF-8", *(search or ("ALL",))))
    else:
        data = ok(client.sort(criteria, "UTF-8", *(search or ("ALL",))))
    return [int(n) for n in data[0].split()]


def test_capabilities_name_the_extensions(sorted_folder: Any) -> None:
    caps = ok(sorted_folder[0].capability())[0].split()
    for name in (b"SORT", b"SORT=DISPLAY", b"THREAD=REFERENCES", b"THREAD=ORDEREDSUBJECT",
                 b"ESORT", b"PARTIAL", b"CONTEXT=SEARCH", b"CONTEXT=SORT"):
        assert name in caps  # CONTEXT=*: test_contexts.py


@pytest.mark.parametrize(("criteria", "order"), [
    ("(ARRIVAL)", [1, 3, 2, 5, 4]),  # RFC 5256 §3 ARRIVAL: INTERNALDATE
    # DATE: the Date field in UTC, INTERNALDATE where it is unreadable (message 4)
    ("(DATE)", [4, 3, 1, 2, 5]),
    ("(REVERSE DATE)", [5, 2, 1, 3, 4]),
    ("(SUBJECT)", [2, 1, 4, 3, 5]),  # base subjects: analyse bilan bilan compte examen
    ("(SUBJECT DATE)", [2, 4, 1, 3, 5]),
    ("(SUBJECT REVERSE DATE)", [2, 1, 4, 3, 5]),
    ("(FROM)", [4, 5, 3, 2, 1]),  # addr-mailbox: bea claire marc yves zoe
    ("(TO)", [3, 1, 5, 4, 2]),  # al bob dan eve zed
    ("(CC)", [3, 4, 2, 1, 5]),  # "" a b x z
    ("(SIZE)", [2, 5, 4, 3, 1]),
    ("(REVERSE SIZE)", [1, 3, 4, 5, 2]),
    # RFC 5957 §3: the display name, else the address
    ("(DISPLAYFROM)", [2, 4, 5, 3, 1]),  # albert bea@ chloe marc@ zoe
    ("(DISPLAYTO)", [2, 1, 5, 4, 3]),  # alice bob@ dan eve@ yann
])
def test_sort_by_each_criterion(sorted_folder: Any, criteria: str, order: list[int]) -> None:
    assert sort(sorted_folder[0], criteria) == order


def test_sort_with_search_criteria_and_uid_sort(sorted_folder: Any) -> None:
    client, _ = sorted_folder
    assert sort(client, "(REVERSE SUBJECT)", "SUBJECT", "bilan") == [1, 4]  # equal: in order
    assert sort(client, "(SIZE)", "2:4") == [2, 4, 3]
    uids = ok(client.uid("SEARCH", "ALL"))[0].split()
    assert sort(client, "(SIZE)", uid=True) == [int(uids[i - 1]) for i in (2, 5, 4, 3, 1)]
    assert sort(client, "(SIZE)", "UID", f"{int(uids[2])}:*", uid=True) == \
        [int(uids[i - 1]) for i in (5, 4, 3)]


def test_sort_refuses_what_is_not_sort(sorted_folder: Any) -> None:
    client, _ = sorted_folder
    for args in (("(COLOUR)", "UTF-8", "ALL"), ("(REVERSE)", "UTF-8", "ALL"),
                 ("()", "UTF-8", "ALL"), ("(DATE)", "UTF-8")):
        with pytest.raises(imaplib.IMAP4.error):
            client._simple_command("SORT", *args)
    typ, data = client._simple_command("SORT", "(DATE)", "KOI8-R", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[0]


def test_esort_return_options(sorted_folder: Any) -> None:
    client, _ = sorted_folder
    # RFC 5267 §3.2: MIN and MAX are the first and last in the sort order
    esearch, _ = raw(client, "SORT", "RETURN", "(MIN MAX COUNT ALL)", "(DATE)",
                     "UTF-8", "ALL")
    assert re.fullmatch(rb'\(TAG "[^"]+"\) MIN 4 MAX 5 COUNT 5 ALL 4,3,1:2,5', esearch[0])
    esearch, _ = raw(client, "UID", "SORT", "RETURN", "()", "(REVERSE SIZE)", "UTF-8",
                     "ALL")
    # RETURN () is ALL (RFC 4731 §3.1); a run in ascending order written n:m
    assert re.fullmatch(rb'\(TAG "[^"]+"\) UID ALL 1,3:5,2', esearch[0])
    esearch, _ = raw(client, "SORT", "RETURN", "(COUNT)", "(DATE)", "UTF-8",
                     "SUBJECT", "nothing-like-this")
    assert esearch[0].endswith(b"COUNT 0")


def test_partial_pages_sorted_and_searched_results(sorted_folder: Any) -> None:
    client, _ = sorted_folder
    # RFC 9394 §3: a range of the sorted results; negative counts from the end
    esearch, _ = raw(client, "SORT", "RETURN", "(PARTIAL 2:3 COUNT)", "(DATE)",
                     "UTF-8", "ALL")
    assert esearch[0].endswith(b"COUNT 5 PARTIAL (2:3 3,1)")
    esearch, _ = raw(client, "SORT", "RETURN", "(PARTIAL -1:-2)", "(DATE)",
                     "UTF-8", "ALL")
    assert esearch[0].endswith(b"PARTIAL (-1:-2 2,5)")
    esearch, _ = raw(client, "SORT", "RETURN", "(PARTIAL 10:20)", "(DATE)",
                     "UTF-8", "ALL")
    assert esearch[0].endswith(b"PARTIAL (10:20 NIL)")
    esearch, _ = raw(client, "SEARCH", "RETURN", "(PARTIAL 1:3)", "ALL")
    assert esearch[0].endswith(b"PARTIAL (1:3 1:3)")
    esearch, _ = raw(client, "SEARCH", "RETURN", "(PARTIAL -1:-1 MIN)", "ALL")
    assert esearch[0].endswith(b"MIN 1 PARTIAL (-1:-1 5)")
    # SAVE keeps the page only (RFC 9394 §3.2)
    raw(client, "SORT", "RETURN", "(SAVE PARTIAL 1:2)", "(REVERSE DATE)", "UTF-8",
        "ALL")
    assert sort(client, "(ARRIVAL)", "$") == [2, 5]
    for bad in ("(PARTIAL 1:2 ALL)", "(PARTIAL 0:2)", "(PARTIAL 1:-2)", "(PARTIAL)",
                "(UPDATES)", "(CONTEXT 1)"):
        with pytest.raises(imaplib.IMAP4.error):
            client._simple_command("SORT", "RETURN", bad, "(DATE)", "UTF-8", "ALL")


def test_thread_over_the_server(environment: Any) -> None:
    person = fresh_person(environment)
    client = login(environment, person)
    try:
        d = "Mon, 7 Dec 2026 {:02d}:00:00 +0000"
        own = f"{person.address}"
        for subject, hour, mid, refs in [
                ("Bilan", 8, "a@x", ""),
                ("Re: Bilan", 9, "b@x", "<a@x>"),
                ("Rendez-vous", 10, "c@x", ""),
                ("Re: Bilan", 11, "d@x", "<a@x> <b@x>"),
                ("Re: Rendez-vous", 12, "e@x", ""),  # by subject alone (RFC 5256 §3 5C)
                ("Autre", 7, "f@x", "")]:
            ok(client.append("INBOX", None, None, mail(subject, own, own, d.format(hour),
                                                       message_id=mid, references=refs)))
        ok(client.select("INBOX"))
        data = ok(client.thread("REFERENCES", "UTF-8", "ALL"))
        assert data == [b"(6)(1 2 4)(3 5)"]
        data = ok(client.thread("ORDEREDSUBJECT", "UTF-8", "ALL"))
        assert data == [b"(6)(1 (2)(4))(3 5)"]
        data = ok(client.thread("REFERENCES", "UTF-8", "NOT", "SUBJECT", "Autre"))
        assert data == [b"(1 2 4)(3 5)"]
        uids = [int(u) for u in ok(client.uid("SEARCH", "ALL"))[0].split()]
        data = ok(client.uid("THREAD", "REFERENCES", "UTF-8", "SUBJECT", "Rendez-vous"))
        assert data == [f"({uids[2]} {uids[4]})".encode()]
        data = ok(client.thread("REFERENCES", "UTF-8", "SUBJECT", "nothing-like-this"))
        assert data == [b""]  # "* THREAD" and nothing after it
        with pytest.raises(imaplib.IMAP4.error):
            client.thread("BYCOLOUR", "UTF-8", "ALL")
    finally:
        client.logout()


def test_sort_with_modseq_reports_the_highest(sorted_folder: Any) -> None:
    # RFC 7162 §3.1.5: the highest mod-sequence of the messages the answer reports
    client, _ = sorted_folder
    modseqs = {}
    for line in ok(client.fetch("1:5", "(MODSEQ)")):
        found = re.match(rb"(\d+) \(MODSEQ \((\d+)\)\)", line)
        assert found is not None, line
        modseqs[int(found.group(1))] = int(found.group(2))
    data = ok(client.sort("(DATE)", "UTF-8", "MODSEQ", "1"))
    assert data == [b"4 3 1 2 5 (MODSEQ %d)" % max(modseqs.values())]
    esearch, _ = raw(client, "SORT", "RETURN", "(MIN)", "(DATE)", "UTF-8", "MODSEQ", "1")
    assert re.fullmatch(rb'\(TAG "[^"]+"\) MIN 4 MODSEQ %d' % modseqs[4], esearch[0])


def test_sort_keys_missing_from_the_store_are_computed_and_kept(environment: Any) -> None:
    """Messages stored before migration 0008s (or with keys of another version) get
    their keys at the first SORT, which writes them back."""
    person = fresh_person(environment)
    client = login(environment, person)
    folders = environment.service(HOSPITAL).store.folders
    try:
        ok(client.create("Anciens"))
        for subject in ("Zèbre", "Re: abeille", "Mouette"):
            ok(client.append("Anciens", None, None, mail(subject, person.address,
                                                         person.address,
                                                         "Mon, 7 Dec 2026 10:00:00 +0000")))

        async def keys(value: str | None = None) -> list[str | None]:
            folder = await folders.get(person.address, "Anciens")
            assert folder is not None
            if value is not None:
                await folders.set_sort_keys(folder.id, {1: value, 2: value, 3: value})
            rows = await folders.sort_data(folder.id, [1, 2, 3])
            return [rows[uid][2] for uid in (1, 2, 3)]

        stored = environment.runner.call(keys())
        assert all(decode(k) is not None for k in stored)  # kept when appended
        assert environment.runner.call(keys("[0]")) == ["[0]"] * 3  # as if from before
        ok(client.select("Anciens"))
        assert sort(client, "(SUBJECT)") == [2, 3, 1]
        assert environment.runner.call(keys()) == stored
    finally:
        client.logout()
