"""Concurrent sessions writing to one INBOX (their writes share transactions,
store/transactions.py): each tagged OK comes after the commit holding its change, which
a reader on another connection of the store sees at once, and no change is lost."""

from __future__ import annotations

import re
import threading
from typing import Any

from tests.imap.conftest import HOSPITAL, fresh_person, login

SESSIONS = 8


def message(n: int) -> bytes:
    return (b"From: Dr Test <test@ch-xyz.mssante.fr>\r\nSubject: grouped %d\r\n"
            b"Message-ID: <grouped-%d@ch-xyz.mssante.fr>\r\n\r\nBody %d.\r\n" % (n, n, n))


def test_concurrent_store_expunge_append_are_committed_before_their_ok(
        environment: Any) -> None:
    person = fresh_person(environment)
    store = environment.service(HOSPITAL).store
    setup = login(environment, person)
    try:
        for n in range(SESSIONS):
            assert setup.append("INBOX", "", None, message(n))[0] == "OK"
    finally:
        setup.logout()
    inbox = environment.runner.call(store.folders.get(person.address, "INBOX"))

    def committed_flags(uid: int) -> str | None:
        return environment.runner.call(store.folders.flags(inbox.id, [uid])).get(uid)

    start = threading.Barrier(SESSIONS)
    failures: list[str] = []
    appended: list[int] = []

    def session(k: int) -> None:
        uid = k + 1
        client = login(environment, person)
        try:
            client.select("INBOX")
            start.wait(30)
            typ, _ = client.uid("STORE", str(uid), "+FLAGS", f"(\\Seen $Grouped{k})")
            if typ != "OK" or f"$Grouped{k}" not in (committed_flags(uid) or ""):
                failures.append(f"STORE of session {k} not committed at its OK")
            typ, data = client.append("INBOX", "", None, message(100 + k))
            found = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            if typ != "OK" or found is None or committed_flags(int(found[1])) is None:
                failures.append(f"APPEND of session {k} not committed at its OK")
            else:
                appended.append(int(found[1]))
            if k % 2 == 0:  # half of them also remove their message
                client.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
                typ, _ = client.uid("EXPUNGE", str(uid))
                if typ != "OK" or committed_flags(uid) is not None:
                    failures.append(f"EXPUNGE of session {k} not committed at its OK")
        finally:
            client.logout()

    threads = [threading.Thread(target=session, args=(k,)) for k in range(SESSIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    assert len(appended) == len(set(appended)) == SESSIONS
    kept = {k + 1: f"$Grouped{k} \\Seen" for k in range(SESSIONS) if k % 2}
    state = environment.runner.call(store.folders.flags(
        inbox.id, list(range(1, SESSIONS + 1)) + appended))
    assert {uid: flags for uid, flags in state.items() if uid <= SESSIONS} == kept
    assert {uid for uid in state if uid > SESSIONS} == set(appended)
