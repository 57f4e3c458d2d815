"""Behaviours an independent IMAP conformance run (the same scripts against the
operator and against Dovecot) found wrong, each driven through a real client
(imaplib, or a raw socket where imaplib hides what matters) against the running
operator, with the RFC section that decides it.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from bench.imap_server import NoTrustSpace

from mssante.auth.passwords import hash_password
from mssante.config import Listener, OperatorConfig, OperatorSettings, TrustSettings
from mssante.domain.mailboxes import MailboxType, PersonKind, Rules
from mssante.imap.server import start_imap
from mssante.operator.runtime import OperatorRuntime
from mssante.store import Store, open_store
from tests.conftest import POSTGRES_URL, postgres_schema
from tests.imap.conftest import HOSPITAL, fresh_person, login, tls_context
from tests.imap.test_imap_server import (
    Raw,
    _free_port,
    appended_uid,
    fetched,
    mail,
    ok,
    untagged,
)


def _append(client: imaplib.IMAP4, folder: str, raw: bytes, flags: str | None = None) -> int:
    return appended_uid(ok(client.append(folder, flags, None, raw)))[1]


# --- mailbox names ---------------------------------------------------------------------


def test_an_invalid_mailbox_name_is_no_not_bad(environment: Any) -> None:
    """RFC 3501 §7.1.3 / RFC 9051 §7.1.3: BAD is for a command the server did not
    understand; a well-formed name that cannot be a mailbox is NO [CANNOT]."""
    client = login(environment, fresh_person(environment))
    try:
        for name in ('"&Jjo"', '"&ZZZ-"', '"a*b"', '"a//b"', '"Projets%"'):
            typ, data = client._simple_command("CREATE", name)
            assert typ == "NO", (name, typ, data)
        typ, data = client._simple_command("SELECT", '"&Jjo"')
        assert typ == "NO" and b"[CANNOT]" in data[-1], data
    finally:
        client.logout()


# --- FETCH ---------------------------------------------------------------------------------


def test_header_fields_echo_the_section_as_asked(environment: Any) -> None:
    """RFC 3501 §7.4.2 (RFC 9051 §7.5.2): the response names the section the client
    asked for, a field named twice included, so that the client finds its answer."""
    raw = Raw(environment)
    try:
        account = fresh_person(environment)
        raw.login(account)
        client = login(environment, account)
        _append(client, "INBOX", mail("twice"))
        client.logout()
        raw.command(b"s1", b"SELECT INBOX")
        reply = raw.command(b"f1", b"FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM FROM)])")
        assert reply[0].startswith(b"* 1 FETCH (BODY[HEADER.FIELDS (FROM FROM)] {"), reply
    finally:
        raw.close()


# --- SEARCH --------------------------------------------------------------------------------


def test_search_from_finds_an_address_written_with_comments(environment: Any) -> None:
    """RFC 5322 §3.4.1: an addr-spec may carry comments and folding white space
    around its parts (CFWS); SEARCH FROM (RFC 3501 §6.4.4) looks for the address, in
    a message appended with bare LF line ends (copied from an mbox file) too, which is
    kept as sent."""
    account = fresh_person(environment)
    client = login(environment, account)
    raw = Raw(environment)
    try:
        cfws = (b"From: <user-from (comment)@ (comment) domain.org>\r\nTo: x@domain.org\r\n"
                b"Subject: cfws\r\n\r\nbody\r\n")
        bodies = [cfws,
                  b"From: user-from@domain.org (RealFrom)\r\nSubject: old\r\n\r\nbody\r\n",
                  b"From: other@domain.org\r\nSubject: other\r\n\r\nbody\r\n"]
        for body in bodies:
            _append(client, "INBOX", body)
        raw.login(account)  # imaplib would turn the bare LFs into CRLF
        reply = raw.append(b"a1", b"INBOX", cfws.replace(b"\r\n", b"\n"))
        assert reply[-1].startswith(b"a1 OK"), reply
        ok(client.select("INBOX"))
        assert ok(client.search(None, "FROM", "user-from@domain.org")) == [b"1 2 4"]
        assert ok(client.search(None, "FROM", "ser-fro")) == [b"1 2 4"]
        assert ok(client.search(None, "FROM", "user-from@domain.org", "BODY", "body")) == [
            b"1 2 4"]  # read from the message itself, not its summary
        text, literal = fetched(ok(client.fetch("4", "(RFC822.SIZE BODY.PEEK[])")))
        lf = cfws.replace(b"\r\n", b"\n")
        assert literal == lf and b"RFC822.SIZE %d" % len(lf) in text, (text, literal)
    finally:
        raw.close()
        client.logout()


# --- MOVE ----------------------------------------------------------------------------------


def test_move_into_the_selected_folder_gives_new_uids(environment: Any) -> None:
    """RFC 6851 §3.1: MOVE is a COPY then an expunge of the originals, into any folder,
    the selected one included: COPYUID (RFC 4315 §3) first, then the EXPUNGE, then the
    EXISTS of the copy."""
    raw = Raw(environment)
    try:
        account = fresh_person(environment)
        raw.login(account)
        client = login(environment, account)
        first = _append(client, "INBOX", mail("stays"))
        moved = _append(client, "INBOX", mail("moves"))
        client.logout()
        select = raw.command(b"s1", b"SELECT INBOX")
        uidvalidity = next(re.search(rb"UIDVALIDITY (\d+)", line).group(1)  # type: ignore[union-attr]
                           for line in select if b"UIDVALIDITY" in line)
        reply = raw.command(b"m1", b"MOVE 2 INBOX")
        assert reply[0] == b"* OK [COPYUID %s %d %d] Moved" % (uidvalidity, moved, moved + 1), reply
        assert reply[1:3] == [b"* 2 EXPUNGE", b"* 2 EXISTS"], reply
        assert reply[-1].startswith(b"m1 OK"), reply
        reply = raw.command(b"f1", b"UID FETCH 1:* (UID)")
        assert [line for line in reply if line.startswith(b"* ")] == [
            b"* 1 FETCH (UID %d)" % first, b"* 2 FETCH (UID %d)" % (moved + 1)], reply
    finally:
        raw.close()


# --- CONDSTORE -----------------------------------------------------------------------------


def test_the_first_condstore_enabling_command_reports_highestmodseq(environment: Any) -> None:
    """RFC 7162 §3.1: FETCH of MODSEQ (like STORE UNCHANGEDSINCE, SEARCH MODSEQ, STATUS
    HIGHESTMODSEQ, ENABLE CONDSTORE) is a CONDSTORE enabling command; the first one
    with a mailbox selected sends the mailbox's HIGHESTMODSEQ (§3.1.2.1), the next ones
    do not."""
    raw = Raw(environment)
    try:
        account = fresh_person(environment)
        raw.login(account)
        client = login(environment, account)
        _append(client, "INBOX", mail("one"))
        client.logout()
        select = raw.command(b"s1", b"SELECT INBOX")
        highest = next(line for line in select if b"HIGHESTMODSEQ" in line)
        reply = raw.command(b"f1", b"FETCH 1 (MODSEQ)")
        assert reply[0] == highest, reply
        assert re.fullmatch(rb"\* 1 FETCH \(UID \d+ MODSEQ \(\d+\)\)|\* 1 FETCH \(MODSEQ \(\d+\)\)",
                            reply[1]), reply
        again = raw.command(b"f2", b"FETCH 1 (MODSEQ)")
        assert not any(b"HIGHESTMODSEQ" in line for line in again), again
    finally:
        raw.close()


def test_search_min_or_max_reports_the_modseq_of_that_message(environment: Any) -> None:
    """RFC 7162 §3.1.10 with RFC 4731 §3.1: RETURN (MIN) or (MAX) with a MODSEQ key
    gives the mod-sequence of the message returned, not the highest of all matches."""
    client = login(environment, fresh_person(environment))
    try:
        for n in range(4):
            _append(client, "INBOX", mail(f"m{n}"))
        ok(client.select("INBOX"))
        modseq = {}
        for seq in (1, 3, 2, 4):  # each STORE takes a new MODSEQ: 2 is the highest of 1:3
            ok(client.store(str(seq), "+FLAGS", "(\\Seen)"))
            data = ok(client.fetch(str(seq), "(MODSEQ)"))
            found = re.search(rb"MODSEQ \((\d+)\)", data[0])
            assert found is not None, data
            modseq[seq] = int(found.group(1))

        def esearch(returns: str) -> bytes:
            typ, data = client._simple_command(
                "SEARCH", f'RETURN ({returns}) 1:3 MODSEQ "/flags/\\\\seen" all 1')
            assert typ == "OK", data
            return untagged(client, "ESEARCH")[0]

        assert esearch("MIN").endswith(b"MIN 1 MODSEQ %d" % modseq[1])
        assert esearch("MAX").endswith(b"MAX 3 MODSEQ %d" % modseq[3])
        assert esearch("MIN MAX").endswith(b"MIN 1 MAX 3 MODSEQ %d" % max(modseq[1], modseq[3]))
        assert esearch("").endswith(b"ALL 1:3 MODSEQ %d" % modseq[2])
    finally:
        client.logout()


# --- LOGOUT --------------------------------------------------------------------------------


def _logout_closes_promptly(sock: ssl.SSLSocket) -> float:
    """Send LOGOUT, read BYE and the tagged OK, then how long until the server closes
    the TCP connection, the client never answering TLS's close_notify."""
    sock.sendall(b"z1 LOGOUT\r\n")
    received = b""
    while b"z1 OK" not in received:
        received += sock.recv(4096)
    assert b"* BYE" in received, received
    start = time.monotonic()
    # the TCP stream under TLS, read past the TLS layer (which would stop at the
    # close_notify): its end is the server closing the connection
    with socket.fromfd(sock.fileno(), socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.settimeout(5.0)
        while tcp.recv(4096):
            pass
    return time.monotonic() - start


def test_logout_closes_the_connection_without_waiting_for_the_client(environment: Any
                                                                     ) -> None:
    """RFC 9051 §6.1.3 (RFC 3501 §6.1.3): after LOGOUT's BYE and tagged OK the server
    closes the connection; a client that does not answer TLS's close_notify (RFC 8446
    §6.1 lets the closing side go without waiting) must not hold it open."""
    account = fresh_person(environment)
    endpoint = environment.operator(HOSPITAL)["imaps"]
    sock = tls_context(environment).wrap_socket(
        socket.create_connection((endpoint["host"], endpoint["port"]), timeout=10),
        server_hostname=endpoint["host"])
    try:
        received = sock.recv(4096)
        assert received.startswith(b"* OK"), received
        sock.sendall(f'l1 LOGIN "{account.login}" "{account.password}"\r\n'.encode())
        while b"l1 OK" not in received:
            received += sock.recv(4096)
        elapsed = _logout_closes_promptly(sock)
        assert elapsed < 1.0, f"the server held the connection {elapsed:.1f} s"
    finally:
        sock.close()


# --- FLAGS ---------------------------------------------------------------------------------


def test_a_new_keyword_is_announced_before_the_fetch_that_shows_it(environment: Any) -> None:
    """RFC 3501 §7.2.6 (RFC 9051 §7.3.5): FLAGS lists the flags of the mailbox; a keyword
    set on a message comes with a new FLAGS (and PERMANENTFLAGS) before the FETCH that
    shows it, to the session that set it and to every other that has the mailbox
    selected; a later SELECT lists it at once."""
    account = fresh_person(environment)
    setter, other = Raw(environment), Raw(environment)
    try:
        client = login(environment, account)
        _append(client, "INBOX", mail("keyword"))
        client.logout()
        for raw in (setter, other):
            raw.login(account)
            select = raw.command(b"s1", b"SELECT INBOX")
            assert b"$Projet" not in b"".join(select), select
        reply = setter.command(b"k1", b"STORE 1 +FLAGS ($Projet)")
        assert reply[0].startswith(b"* FLAGS (") and b" $Projet)" in reply[0], reply
        assert reply[1].startswith(b"* OK [PERMANENTFLAGS (") and b"$Projet \\*)]" in reply[1]
        assert reply[2].startswith(b"* 1 FETCH (") and b"$Projet" in reply[2], reply
        deadline = time.monotonic() + 10
        while True:
            reply = other.command(b"n1", b"NOOP")
            if len(reply) > 1:
                break
            assert time.monotonic() < deadline, "the other session never heard of it"
            time.sleep(0.1)
        assert reply[0].startswith(b"* FLAGS (") and b"$Projet" in reply[0], reply
        assert reply[1].startswith(b"* OK [PERMANENTFLAGS (") and b"$Projet" in reply[1], reply
        assert reply[2].startswith(b"* 1 FETCH (") and b"$Projet" in reply[2], reply
        again = other.command(b"n2", b"STORE 1 +FLAGS ($Projet \\Seen)")
        assert not any(line.startswith(b"* FLAGS") for line in again), again  # known already
        select = other.command(b"s2", b"SELECT INBOX")
        assert select[0].startswith(b"* FLAGS (") and b"$Projet" in select[0], select
    finally:
        setter.close()
        other.close()


# --- subscriptions ---------------------------------------------------------------------


def _lines(raw: Raw, tag: bytes, command: bytes) -> list[bytes]:
    reply = raw.command(tag, command)
    assert reply[-1].startswith(tag + b" OK"), reply
    return reply[:-1]


def test_subscriptions_are_names_that_outlive_their_mailbox(environment: Any) -> None:
    """RFC 3501 §6.3.4 and §6.3.6 (RFC 9051 §6.3.5, §6.3.7): DELETE does not remove a
    subscription, and SUBSCRIBE may name a mailbox that does not exist; LSUB shows such
    a name as \\Noselect (RFC 3501 §6.3.9), LIST (SUBSCRIBED) as \\NonExistent (RFC 5258
    §3.4), a plain LIST not at all. CREATE subscribes nothing (as Dovecot); a folder
    created again under a subscribed name is subscribed."""
    raw = Raw(environment)
    try:
        raw.login(fresh_person(environment))
        _lines(raw, b"c1", b"CREATE Projets")
        assert _lines(raw, b"l1", b'LSUB "" Projets') == []  # CREATE did not subscribe
        _lines(raw, b"s1", b"SUBSCRIBE Projets")
        assert _lines(raw, b"l2", b'LSUB "" Projets') == [
            b'* LSUB (\\HasNoChildren) "/" Projets']
        _lines(raw, b"d1", b"DELETE Projets")
        assert _lines(raw, b"l3", b'LSUB "" Projets') == [
            b'* LSUB (\\Noselect \\HasNoChildren) "/" Projets']
        assert _lines(raw, b"l4", b'LIST (SUBSCRIBED) "" Projets') == [
            b'* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" Projets']
        assert _lines(raw, b"l5", b'LIST "" Projets') == []
        _lines(raw, b"s2", b"SUBSCRIBE Ailleurs/Plus-tard")  # no such mailbox: allowed
        assert _lines(raw, b"l6", b'LIST (SUBSCRIBED) "" Ailleurs*') == [
            b'* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" Ailleurs/Plus-tard']
        _lines(raw, b"c2", b"CREATE Projets")  # takes its subscription back
        assert _lines(raw, b"l7", b'LSUB "" Projets') == [
            b'* LSUB (\\HasNoChildren) "/" Projets']
        _lines(raw, b"u1", b"UNSUBSCRIBE Ailleurs/Plus-tard")
        assert _lines(raw, b"l8", b'LSUB "" Ailleurs*') == []
        reply = raw.command(b"u2", b"UNSUBSCRIBE Ailleurs/Plus-tard")
        assert reply[-1].startswith(b"u2 NO [NONEXISTENT]"), reply
    finally:
        raw.close()


def test_lsub_percent_shows_the_parent_of_a_subscription_it_does_not_reach(environment: Any
                                                                          ) -> None:
    """RFC 3501 §6.3.9: with "foo/bar" subscribed and not "foo", LSUB "%" returns "foo"
    with \\Noselect, and "*" returns "foo/bar" itself only."""
    raw = Raw(environment)
    try:
        raw.login(fresh_person(environment))
        for n, name in enumerate((b"Box/test", b"Box/test2/test", b"Box/test3/test3")):
            _lines(raw, b"c%d" % n, b"CREATE " + name)
            _lines(raw, b"s%d" % n, b"SUBSCRIBE " + name)
        assert _lines(raw, b"l1", b'LSUB "" Box/%') == [
            b'* LSUB (\\HasNoChildren) "/" Box/test',
            b'* LSUB (\\Noselect \\HasChildren) "/" Box/test2',
            b'* LSUB (\\Noselect \\HasChildren) "/" Box/test3']
        assert _lines(raw, b"l2", b'LSUB "" *test') == [
            b'* LSUB (\\HasNoChildren) "/" Box/test',
            b'* LSUB (\\HasNoChildren) "/" Box/test2/test']
        _lines(raw, b"d1", b"DELETE Box/test3/test3")
        assert _lines(raw, b"l3", b'LSUB "" Box/*') == [
            b'* LSUB (\\HasNoChildren) "/" Box/test',
            b'* LSUB (\\HasNoChildren) "/" Box/test2/test',
            b'* LSUB (\\Noselect \\HasNoChildren) "/" Box/test3/test3']
    finally:
        raw.close()


# --- \Recent -------------------------------------------------------------------------------


def _recent(lines: list[bytes]) -> int | None:
    found = [int(line.split()[1]) for line in lines if re.fullmatch(rb"\* \d+ RECENT", line)]
    return found[-1] if found else None


def _searched(raw: Raw, tag: bytes, criteria: bytes) -> list[int]:
    lines = _lines(raw, tag, b"SEARCH " + criteria)
    found = [line for line in lines if line.startswith(b"* SEARCH")]
    return [int(n) for n in found[0].split()[2:]]


def test_recent_is_set_in_one_session_only(environment: Any) -> None:
    """RFC 3501 §2.3.2: a message is \\Recent in the first session told of it: the SELECT
    that finds it (`* n RECENT`, §7.3.2), or the EXISTS that announces it, a COPY or an
    APPEND into the selected mailbox included (§6.4.7, §6.3.11); no other session sees
    it recent. EXAMINE shows the unclaimed ones without taking them (§6.3.2). SEARCH
    NEW, OLD and RECENT read it (§6.4.4). An IMAP4rev2 session (RFC 9051, which dropped
    \\Recent) neither shows nor takes it."""
    account = fresh_person(environment)
    client = login(environment, account)
    first, second, rev2 = Raw(environment), Raw(environment), Raw(environment)
    try:
        for raw in (first, second, rev2):
            raw.login(account)
        _lines(rev2, b"e1", b"ENABLE IMAP4rev2")
        _lines(rev2, b"s1", b"SELECT INBOX")
        _append(client, "INBOX", mail("one"))
        _append(client, "INBOX", mail("two"))
        assert _recent(_lines(rev2, b"n1", b"NOOP")) is None  # rev2: no RECENT, no claim
        assert _recent(_lines(second, b"x1", b"EXAMINE INBOX")) == 2  # shown, not taken
        assert _recent(_lines(first, b"s1", b"SELECT INBOX")) == 2  # taken
        _lines(second, b"c1", b"CLOSE")
        assert _recent(_lines(second, b"s2", b"SELECT INBOX")) == 0
        status = ok(client.status("INBOX", "(RECENT MESSAGES)"))[0]
        assert b"RECENT 0" in status and b"MESSAGES 2" in status, status

        fetched = _lines(first, b"f1", b"FETCH 1:2 (FLAGS)")
        assert fetched == [b"* 1 FETCH (FLAGS (\\Recent))", b"* 2 FETCH (FLAGS (\\Recent))"]
        assert _searched(first, b"q1", b"RECENT") == [1, 2]
        _lines(first, b"t1", b"STORE 1 +FLAGS (\\Seen)")
        assert _searched(first, b"q2", b"NEW") == [2]
        assert _searched(first, b"q3", b"OLD") == []
        assert _searched(second, b"q4", b"RECENT") == []
        assert _searched(second, b"q5", b"OLD") == [1, 2]
        rev2_flags = _lines(rev2, b"f2", b"FETCH 1:2 (FLAGS)")
        assert not any(b"Recent" in line for line in rev2_flags), rev2_flags

        copied = _lines(first, b"c2", b"COPY 1 INBOX")  # the copy is recent here
        assert b"* 3 EXISTS" in copied and _recent(copied) == 3, copied
        assert _lines(first, b"f3", b"FETCH 3 (FLAGS)") == [
            b"* 3 FETCH (FLAGS (\\Recent \\Seen))"]
        appended = first.append(b"a1", b"INBOX", mail("three"))
        assert b"* 4 EXISTS" in appended and _recent(appended) == 4, appended
        deadline = time.monotonic() + 10
        while True:  # the second session hears of them, none recent there
            heard = _lines(second, b"n2", b"NOOP")
            if b"* 4 EXISTS" in heard:
                break
            assert time.monotonic() < deadline, heard
            time.sleep(0.1)
        assert _recent(heard) == 0, heard

        _append(client, "INBOX", mail("four"))  # the rev2 session hears first: no claim
        deadline = time.monotonic() + 10
        while b"* 5 EXISTS" not in (heard := _lines(rev2, b"n3", b"NOOP")):
            assert time.monotonic() < deadline, heard
            time.sleep(0.1)
        assert _recent(heard) is None, heard
        assert _recent(_lines(first, b"n4", b"NOOP")) == 5
    finally:
        client.logout()
        for raw in (first, second, rev2):
            raw.close()


@contextlib.asynccontextmanager
async def _two_stores(engine: str, tmp_path: Path) -> AsyncIterator[list[Store]]:
    """Two stores on one database, as two operator processes have."""
    if engine == "sqlite":
        url = f"sqlite:///{tmp_path / 'operator.sqlite3'}"
        stores = [await open_store(url) for _ in range(2)]
        try:
            yield stores
        finally:
            for store in stores:
                await store.close()
        return
    async with postgres_schema() as schema:
        stores = [await open_store(POSTGRES_URL, schema=schema) for _ in range(2)]
        try:
            yield stores
        finally:
            for store in stores:
                await store.close()


@pytest.mark.parametrize("engine", ["sqlite",
                                    pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_recent_is_claimed_once_across_processes(environment: Any, tmp_path: Path,
                                                       engine: str) -> None:
    """RFC 3501 §2.3.2 across processes: sessions served by two operator processes on one
    database select the same mailbox at the same moment; the messages are \\Recent in
    exactly one of them."""
    tls = environment.service(HOSPITAL).config.tls
    address, password = f"t{uuid.uuid4().hex[:10]}@{HOSPITAL}", uuid.uuid4().hex
    async with _two_stores(engine, tmp_path) as stores:
        await stores[0].create_person(address, PersonKind.HEALTH, "Test",
                                      password_hash=hash_password(password))
        await stores[0].create_mailbox(address, MailboxType.PER, rules=Rules(), owner=address)
        inbox = await stores[0].folders.get(address, "INBOX")
        assert inbox is not None
        servers, ports = [], []
        try:
            for store in stores:
                port = _free_port()
                config = OperatorConfig(
                    path=Path("operator.toml"), tls=tls,
                    operator=OperatorSettings(domains=[HOSPITAL], hostname=f"imap.{HOSPITAL}",
                                              database_url=store.url),
                    trust=TrustSettings(url="https://127.0.0.1:9"),
                    imaps=Listener("127.0.0.1", port))
                ctx = OperatorRuntime(config.operator, store, NoTrustSpace())
                servers.append(await start_imap(ctx, config))
                ports.append(port)

            def scenario() -> list[int]:
                clients = [imaplib.IMAP4_SSL("127.0.0.1", port, timeout=30,
                                             ssl_context=tls_context(environment))
                           for port in ports for _ in range(2)]  # two sessions per process
                try:
                    for client in clients:
                        ok(client.login(address, password))
                    for n in range(3):
                        ok(clients[0].append("INBOX", None, None, mail(f"m{n}")))
                    start = threading.Barrier(len(clients))
                    counts: list[int] = [0] * len(clients)

                    def select(n: int) -> None:
                        start.wait()
                        ok(clients[n].select("INBOX"))
                        counts[n] = int(clients[n].untagged_responses["RECENT"][-1])

                    threads = [threading.Thread(target=select, args=(n,))
                               for n in range(len(clients))]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                    return counts
                finally:
                    for client in clients:
                        client.logout()

            counts = await asyncio.to_thread(scenario)
            assert sorted(counts) == [0, 0, 0, 3], counts
        finally:
            for server in servers:
                server.close()
                await server.wait_closed()
