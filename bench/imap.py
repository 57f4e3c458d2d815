"""IMAP benchmark: mssante's IMAP server and Dovecot side by side, on the same messages.

    python bench/imap.py [--messages 100000] [--only mssante|dovecot|both] [--tls implicit|none]
                         [--store sqlite|postgres] [--postgres-url URL]
                         [--clients 50] [--client-messages 1000] [--idle 10000] [--skip idle,...]

Each server is started fresh with the same accounts holding the same bytes, flags and
INTERNALDATEs under the same UIDs (a deterministic corpus, ``Corpus``): the main
account with ``--messages`` messages in its INBOX, and ``--clients`` accounts with
``--client-messages`` each. The workload, one server after the other, over implicit
TLS by default (certificates from the project's PKI):

a. SELECT INBOX, then ``UID FETCH 1:* (FLAGS)`` on the main account, each timed until
   its tagged OK (median of ``--repeat``); the first SELECT after the start (Dovecot
   builds its index there) is reported apart;
b. ``UID FETCH x:y (BODY.PEEK[])`` over ``--fetch-messages`` messages in batches of
   ``--batch`` → messages/s and MB/s (of message octets);
c. ``--searches`` searches, alternately ``UID SEARCH HEADER Subject "<word>"`` and
   ``UID SEARCH FROM "<word>"`` on the main INBOX → searches/s; the first search is
   reported apart (Dovecot then fills its cache), and the hit counts are compared
   between the servers;
c2. ``UID SORT (REVERSE ARRIVAL)``, ``(SUBJECT DATE)``, ``(FROM)`` and ``UID THREAD
   REFERENCES`` of the whole main INBOX (when the server has SORT and THREAD): the
   first of each apart (cold), then the median of five;
d. ``UID STORE a:b +FLAGS.SILENT (\\Flagged)`` then ``-FLAGS.SILENT`` on ``--store-ranges``
   ranges of 1,000 UIDs → ranges/s (each STORE command is one range);
e. ``--appends`` APPENDs of a 20 KB message to INBOX (``{n+}`` when the server
   advertises LITERAL+, else a synchronising literal) → appends/s;
f. ``--clients`` concurrent connections, one per account, each doing ``--rounds``
   rounds of: SELECT + UID FETCH 1:* (FLAGS), UID FETCH of 20 bodies, one search,
   STORE +/- on 100 UIDs, one APPEND (7 commands) → commands/s over all clients;
g. ``--idle`` connections (the client accounts in turn) that log in, SELECT INBOX and
   IDLE; then the memory of the server's processes from /proc: PSS and RSS summed (for
   Dovecot every process of the instance: master, auth, log, config, anvil, stats,
   imap-login and one imap per connection). RSS counts shared pages once per process
   and overstates Dovecot's many processes; PSS shares them out.

The client is a lean asyncio client on raw streams (uvloop), not imaplib: it finds the
end of a response with one regular-expression scan over the received bytes, skipping
literals by their announced length, so that it is not the bottleneck.

Output: the machine, the workload, then one table: each figure for mssante and for
Dovecot, and the ratio mssante/Dovecot as a speed ratio (rates: mssante / Dovecot;
times: Dovecot / mssante), so that higher is better for mssante everywhere. The
issue's goal: a ratio of at least 0.5 on every operation, and 10,000 IDLE
connections in less than 1 GiB.

The mssante side is ``start_mssante`` (marked HOOK): it loads the corpus with
``store.folders.bulk_append`` and must start the server and return a ``ServerHandle``.
Until it does, run ``--only dovecot``.

Implementation notes:
- Both servers get the corpus in the same order, so UID k is the same message on both;
  the run checks the EXISTS counts, the number of FETCH responses, the bytes of three
  fetched messages against the corpus, and compares the search hit counts.
- Operations are timed from the first byte written to the tagged reply read; the client
  sends one command at a time per connection (no pipelining).
- Times are ``time.perf_counter()``; memory is read once all IDLE connections are
  established and a couple of seconds have passed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import re
import resource
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine

MAIN_ACCOUNT = "jean.martin@medecin.mssante.fr"
GOAL_RATIO = 0.5
GOAL_IDLE_BYTES = 1 << 30


# -- corpus -----------------------------------------------------------------------------------

_DOMAINS = ("ch-xyz.mssante.fr", "chu-lyon.mssante.fr", "aphp.mssante.fr",
            "labo-biomed.mssante.fr", "radiologie-sud.mssante.fr", "medecin.mssante.fr",
            "clinique-des-lilas.mssante.fr", "pharmacien.mssante.fr", "infirmier.mssante.fr")
_GIVEN = ("Paul", "Marie", "Jean", "Sophie", "Hélène", "François", "Nathalie", "Stéphane",
          "Isabelle", "Thierry", "Camille", "Léa", "Nicolas", "Céline", "Jérôme", "Agnès")
_FAMILY = ("Dupont", "Martin", "Bernard", "Durand", "Lefèvre", "Moreau", "Laurent", "Garnier",
           "Rousseau", "Lambert", "Fontaine", "Chevalier", "Gauthier", "Mercier", "Blanc",
           "Guérin", "Boyer", "Roux", "Faure", "André")
_SUBJECTS = (
    "Compte rendu de consultation – {patient}",
    "Résultats de biologie du {date} – {patient}",
    "Courrier de sortie d'hospitalisation – {patient}",
    "Demande d'avis cardiologique pour {patient}",
    "IRM lombaire : compte rendu – {patient}",
    "Scanner thoracique – résultats – {patient}",
    "Ordonnance de kinésithérapie – {patient}",
    "Lettre de liaison – {patient}",
    "Résultat anatomopathologique – {patient}",
    "Convocation au bloc opératoire le {date}",
    "Échographie abdominale – {patient}",
    "Bilan préopératoire – {patient}",
    "Suivi diabétologie – HbA1c – {patient}",
    "RE: Demande de rendez-vous en dermatologie",
    "TR: Compte rendu opératoire – {patient}",
    "Avis infectiologie – antibiothérapie – {patient}",
)
_SENTENCES = (
    "Je vous remercie de m'avoir adressé votre patient pour avis.",
    "L'examen clinique retrouve un abdomen souple, dépressible et indolore.",
    "Pas de signe de décompensation cardiaque à l'examen de ce jour.",
    "La tension artérielle est à 132/78 mmHg, la fréquence cardiaque à 72 bpm.",
    "Le bilan biologique montre une créatininémie stable à 88 µmol/L.",
    "Je propose de poursuivre le traitement actuel sans modification.",
    "Une IRM de contrôle sera réalisée dans six mois.",
    "Les résultats de l'hémogramme sont dans les limites de la normale.",
    "Le patient ne rapporte pas d'effet indésirable du traitement.",
    "Antécédents : hypertension artérielle, dyslipidémie, tabagisme sevré.",
    "Traitement de sortie : bisoprolol 2,5 mg, atorvastatine 20 mg, kardégic 75 mg.",
    "L'électrocardiogramme montre un rythme sinusal régulier sans trouble de conduction.",
    "Je reste à votre disposition pour tout renseignement complémentaire.",
    "Le compte rendu complet est joint au format PDF.",
    "Conclusion : évolution favorable, pas d'indication chirurgicale à ce stade.",
    "Une consultation de suivi est programmée dans trois mois.",
    "La patiente signale une douleur lombaire depuis une quinzaine de jours.",
    "L'échographie ne retrouve pas d'anomalie morphologique.",
    "Glycémie à jeun : 1,05 g/L ; HbA1c : 6,8 %.",
    "Bien confraternellement.",
)
# Words of the subjects and senders the searches look for (ASCII: no charset question).
SEARCH_SUBJECT_WORDS = ("biologie", "consultation", "sortie", "IRM", "ordonnance",
                        "cardiologique", "scanner", "liaison", "HbA1c", "bloc")
SEARCH_FROM_WORDS = ("chu-lyon", "dupont", "labo-biomed", "aphp", "garnier", "radiologie")
_BASE_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z


@dataclass(frozen=True)
class Account:
    """An account of the benchmark and the corpus messages its INBOX holds."""

    address: str
    password: str
    first: int  # corpus index of its first message (UID 1)
    count: int

    def items(self, corpus: Corpus, start: int = 0, stop: int | None = None
              ) -> Iterator[tuple[bytes, str, float]]:
        """(body, flags, INTERNALDATE) of its messages ``start``..``stop`` (0-based)."""
        end = self.count if stop is None else min(stop, self.count)
        for offset in range(start, end):
            yield corpus.item(self.first + offset)

    def batches(self, corpus: Corpus, size: int = 5000
                ) -> Iterator[list[tuple[bytes, str, float]]]:
        for start in range(0, self.count, size):
            yield list(self.items(corpus, start, start + size))


class Corpus:
    """Deterministic, realistic MSSanté messages: message ``i`` is the same for any run.

    60 % plain text (2–10 KB, UTF-8, 8bit or quoted-printable), 30 % with a PDF
    attachment, 10 % with a ZIP attachment (10–60 KB in all; attachments are base64
    of pseudo-random bytes); French clinical subjects (RFC 2047 encoded), From and To
    on mssante.fr domains; flags: 70 % \\Seen, 10 % \\Seen \\Answered, 5 % \\Seen
    \\Flagged, 15 % unread; INTERNALDATEs five minutes apart from 2024-01-01.
    """

    def __init__(self, seed: int = 0, *, clients: int = 50, client_messages: int = 1000) -> None:
        self.seed = seed
        self.clients = clients
        self.client_messages = client_messages

    def accounts(self, n_messages: int) -> list[Account]:
        """The main account (``n_messages``), then the ``clients`` accounts."""
        found = [Account(MAIN_ACCOUNT, f"bench-{self.seed}-main", 0, n_messages)]
        for k in range(self.clients):
            found.append(Account(f"medecin{k + 1:02d}@medecin.mssante.fr",
                                 f"bench-{self.seed}-{k + 1}",
                                 n_messages + k * self.client_messages, self.client_messages))
        return found

    def _rng(self, index: int) -> random.Random:
        return random.Random(f"mssante-imap-bench:{self.seed}:{index}")

    def internaldate(self, index: int) -> float:
        return float(_BASE_EPOCH + index * 300)

    def flags(self, index: int) -> str:
        r = self._rng(-1 - index).random()
        if r < 0.70:
            return "\\Seen"
        if r < 0.80:
            return "\\Seen \\Answered"
        if r < 0.85:
            return "\\Seen \\Flagged"
        return ""

    def item(self, index: int) -> tuple[bytes, str, float]:
        return self.message(index), self.flags(index), self.internaldate(index)

    def message(self, index: int, *, size: int | None = None) -> bytes:
        """Message ``index`` (CRLF line endings); ``size``: a text message padded to it."""
        rng = self._rng(index)
        kind = rng.random()
        sender_given, sender_family = rng.choice(_GIVEN), rng.choice(_FAMILY)
        domain = rng.choice(_DOMAINS)
        sender = f"{_ascii(sender_given)}.{_ascii(sender_family)}@{domain}".lower()
        patient = f"{rng.choice(_FAMILY).upper()} {rng.choice(_GIVEN)}"
        when = datetime.fromtimestamp(self.internaldate(index) - rng.randint(5, 600), UTC)
        subject = rng.choice(_SUBJECTS).format(patient=patient,
                                                date=when.strftime("%d/%m/%Y"))
        head = [
            f"Return-Path: <{sender}>",
            f"Received: from mta.{domain} (mta.{domain} [10.{index % 250}.{rng.randint(0, 250)}"
            f".{rng.randint(1, 250)}])\r\n\tby mx.medecin.mssante.fr with ESMTPS id "
            f"{rng.getrandbits(48):012X}; {format_datetime(when)}",
            f"Date: {format_datetime(when)}",
            f"From: {_encode(f'Dr {sender_given} {sender_family}')} <{sender}>",
            f"To: <{MAIN_ACCOUNT}>",
            f"Subject: {_encode(subject)}",
            f"Message-ID: <{index}.{rng.getrandbits(64):016x}@{domain}>",
            "MIME-Version: 1.0",
            "X-Mailer: mssante-imap-bench",
        ]
        if size is not None:
            text_size, attachment = size, None
        elif kind < 0.6:
            text_size, attachment = rng.randint(1200, 9000), None
        elif kind < 0.9:
            text_size, attachment = rng.randint(800, 3000), ("pdf", rng.randint(6000, 42000))
        else:
            text_size, attachment = rng.randint(800, 3000), ("zip", rng.randint(12000, 42000))
        text = _text(rng, text_size)
        qp = rng.random() < 0.3
        text_part = ([b"Content-Type: text/plain; charset=utf-8",
                      b"Content-Transfer-Encoding: " + (b"quoted-printable" if qp else b"8bit")],
                     _quoted_printable(text) if qp else text)
        if attachment is None:
            headers = "\r\n".join(head).encode() + b"\r\n" + b"\r\n".join(text_part[0])
            message = headers + b"\r\n\r\n" + text_part[1]
            if size is not None:
                message = message[:size] if len(message) >= size else \
                    message + b"x" * (size - len(message) - 2) + b"\r\n"
            return message
        what, length = attachment
        boundary = f"=_bench_{rng.getrandbits(64):016x}"
        if what == "pdf":
            payload = b"%PDF-1.4\n" + rng.randbytes(length) + b"\n%%EOF\n"
            ctype, name = "application/pdf", f"CR_{_ascii(patient).replace(' ', '_')}.pdf"
        else:
            payload = b"PK\x03\x04" + rng.randbytes(length)
            ctype, name = "application/zip", "imagerie_DICOM.zip"
        encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
        head.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
        parts = [
            "\r\n".join(head).encode() + b"\r\n\r\nThis is a multi-part message in MIME format.",
            f"--{boundary}".encode() + b"\r\n" + b"\r\n".join(text_part[0]) + b"\r\n\r\n"
            + text_part[1],
            f"--{boundary}\r\nContent-Type: {ctype}; name=\"{name}\"\r\n"
            f"Content-Disposition: attachment; filename=\"{name}\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n".encode() + encoded,
            f"--{boundary}--\r\n".encode(),
        ]
        return b"\r\n".join(parts)

    def append_message(self, size: int = 20 * 1024) -> bytes:
        """The message of the APPEND runs: a text message of exactly ``size`` octets."""
        return self.message(-1, size=size)


def _ascii(text: str) -> str:
    table = str.maketrans("éèêëàâäîïôöùûüçÉÈÊÀÂÎÔÙÛÇ", "eeeeaaaiioouuucEEEAAIOUUC")
    return text.translate(table)


def _encode(text: str) -> str:
    """RFC 2047 encoded-word(s) when ``text`` is not ASCII."""
    if text.isascii():
        return text
    return Header(text, "utf-8").encode(linesep="\r\n")


def _text(rng: random.Random, size: int) -> bytes:
    lines: list[str] = ["Cher confrère,", ""]
    length = 0
    while length < size:
        paragraph = " ".join(rng.choice(_SENTENCES) for _ in range(rng.randint(2, 5)))
        words, line = paragraph.split(), ""
        for word in words:
            if len(line) + len(word) + 1 > 72:
                lines.append(line)
                length += len(line.encode()) + 2
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines += [line, ""]
        length += len(line.encode()) + 4
    lines += ["Dr " + rng.choice(_GIVEN) + " " + rng.choice(_FAMILY), ""]
    return "\r\n".join(lines).encode()


def _quoted_printable(text: bytes) -> bytes:
    import quopri

    return quopri.encodestring(text.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")


# -- the client -------------------------------------------------------------------------------

class ImapError(Exception):
    """The server answered NO or BAD, or broke the protocol."""


@dataclass
class Reply:
    status: str  # "OK", "NO" or "BAD"
    text: bytes  # the rest of the tagged line
    untagged: int  # untagged responses ("* ...") received for the command
    literals: int  # literals in them
    literal_bytes: int  # their octets
    data: bytes = b""  # the untagged responses as received, when asked for (keep=True)


# A literal's announcement, or the start of a tagged line (the client's tags are A<n>).
_SCAN = re.compile(rb"\{(\d+)\+?\}\r\n|\r\n(A\d+) ")
_TRIM = 4 << 20  # drop consumed bytes from the buffer past this
_LITERAL = re.compile(rb"\{(\d+)\}\r\n")


class Client:
    """One IMAP connection, one command at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        # Invariant: buf[pos-2:pos] is the CRLF that ended the last line read, so that a
        # tagged line at pos is found by the same search as any other.
        self.buf = bytearray(b"\r\n")
        self.pos = 2
        self.counter = 0
        self.capabilities: frozenset[str] = frozenset()

    @classmethod
    async def connect(cls, host: str, port: int, *, tls: str | None,
                      context: ssl.SSLContext | None) -> Client:
        """Connect and read the greeting; ``tls``: "implicit", "starttls" or None."""
        reader, writer = await asyncio.open_connection(
            host, port, ssl=context if tls == "implicit" else None, limit=1 << 20)
        client = cls(reader, writer)
        greeting = await client._line()
        if not greeting.startswith(b"* OK"):
            raise ImapError(f"greeting: {greeting!r}")
        if tls == "starttls":
            await client.command(b"STARTTLS")
            await writer.start_tls(context)  # type: ignore[arg-type]
        return client

    def _tag(self) -> bytes:
        self.counter += 1
        return b"A%d" % self.counter

    async def _fill(self) -> None:
        data = await self.reader.read(1 << 18)
        if not data:
            raise ImapError("the server closed the connection")
        self.buf += data

    async def _line(self) -> bytes:
        while (eol := self.buf.find(b"\r\n", self.pos)) < 0:
            await self._fill()
        line = bytes(self.buf[self.pos:eol])
        self.pos = eol + 2
        return line

    def _trim(self) -> None:
        if self.pos > _TRIM:
            del self.buf[:self.pos - 2]
            self.pos = 2

    async def _response(self, tag: bytes, keep: bool) -> Reply:
        buf = self.buf
        start = self.pos
        scan = start - 2
        untagged = literals = literal_bytes = 0
        # "* " opens a response only at a line start: the first segment opens with the
        # CRLF before ``start``, the text after a literal continues a line.
        counted_from = start - 2
        while True:
            m = _SCAN.search(buf, scan)
            if m is None:
                scan = max(scan, len(buf) - 24)
                await self._fill()
                continue
            if m.group(1) is not None:  # a literal: count the segment before, skip it
                n = int(m.group(1))
                end = m.end() + n
                untagged += buf.count(b"\r\n* ", counted_from, m.start())
                while len(buf) < end:
                    await self._fill()
                literals += 1
                literal_bytes += n
                counted_from = scan = end
                if not keep and end > _TRIM:  # forget what was counted
                    del buf[:end]
                    start = counted_from = scan = 0
                continue
            line_start = m.start() + 2
            while (eol := buf.find(b"\r\n", m.end())) < 0:
                await self._fill()
            untagged += buf.count(b"\r\n* ", counted_from, m.start() + 2)
            if m.group(2) != tag:
                raise ImapError(f"unexpected tagged reply {bytes(buf[line_start:eol])!r}")
            status, _, text = bytes(buf[m.end():eol]).partition(b" ")
            data = bytes(buf[start:line_start]) if keep else b""
            self.pos = eol + 2
            self._trim()
            return Reply(status.decode("ascii", "replace"), text, untagged, literals,
                         literal_bytes, data)

    async def command(self, text: bytes, *, keep: bool = False, check: bool = True) -> Reply:
        """Send ``<tag> text`` and read until its tagged reply; NO/BAD raise if ``check``."""
        tag = self._tag()
        self.writer.write(tag + b" " + text + b"\r\n")
        reply = await self._response(tag, keep)
        if check and reply.status != "OK":
            raise ImapError(f"{text[:80]!r}: {reply.status} {reply.text!r}")
        return reply

    async def login(self, user: str, password: str) -> None:
        reply = await self.command(b"LOGIN " + quote(user) + b" " + quote(password))
        m = re.match(rb"\[CAPABILITY ([^\]]*)\]", reply.text)
        if m is None:
            reply = await self.command(b"CAPABILITY", keep=True)
            m = re.search(rb"\* CAPABILITY ([^\r\n]*)", reply.data)
        self.capabilities = frozenset(m.group(1).decode().upper().split()) if m else frozenset()

    async def select(self, mailbox: str = "INBOX") -> int:
        """SELECT; returns EXISTS."""
        reply = await self.command(b"SELECT " + quote(mailbox), keep=True)
        m = re.search(rb"\* (\d+) EXISTS", reply.data)
        if m is None:
            raise ImapError("SELECT without EXISTS")
        return int(m.group(1))

    async def append(self, mailbox: str, body: bytes, flags: str = "\\Seen") -> Reply:
        head = b"APPEND " + quote(mailbox) + b" (" + flags.encode() + b") "
        if "LITERAL+" in self.capabilities:
            return await self.command(head + b"{%d+}\r\n" % len(body) + body)
        tag = self._tag()
        self.writer.write(tag + b" " + head + b"{%d}\r\n" % len(body))
        while True:
            line = await self._line()
            if line.startswith(b"+"):
                break
            if line.startswith(tag + b" "):
                raise ImapError(f"APPEND refused: {line!r}")
        self.writer.write(body + b"\r\n")
        reply = await self._response(tag, False)
        if reply.status != "OK":
            raise ImapError(f"APPEND: {reply.status} {reply.text!r}")
        return reply

    async def idle(self) -> bytes:
        """Start IDLE and wait for the continuation; returns the tag for ``done``."""
        tag = self._tag()
        self.writer.write(tag + b" IDLE\r\n")
        while True:
            line = await self._line()
            if line.startswith(b"+"):
                return tag
            if line.startswith(tag + b" "):
                raise ImapError(f"IDLE refused: {line!r}")

    async def done(self, tag: bytes) -> None:
        self.writer.write(b"DONE\r\n")
        await self._response(tag, False)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 5)

    async def logout(self) -> None:
        with contextlib.suppress(ImapError, OSError):
            await self.command(b"LOGOUT", check=False)
        await self.close()


def quote(value: str) -> bytes:
    return b'"' + value.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def literal_payloads(data: bytes) -> list[bytes]:
    """The literals in a kept response, in order (for the content checks)."""
    found, pos = [], 0
    while (m := _LITERAL.search(data, pos)) is not None:
        found.append(data[m.end():m.end() + int(m.group(1))])
        pos = m.end() + int(m.group(1))
    return found


# -- servers ----------------------------------------------------------------------------------

@dataclass
class ServerHandle:
    """A server under test, started and loaded with ``corpus.accounts(n_messages)``."""

    name: str  # for the table, e.g. "Dovecot 2.3.19.1"
    host: str
    port: int
    tls: str | None  # "implicit", "starttls" or None (plain text)
    ssl_context: ssl.SSLContext | None  # the client's context (verifies the server)
    accounts: list[Account]  # [0]: the main account; then the client accounts
    pids: Callable[[], list[int]]  # the server's processes, for the memory figure
    stop: Callable[[], Awaitable[None]]
    note: str = ""  # how it is set up, printed under the table

    async def connect(self) -> Client:
        return await Client.connect(self.host, self.port, tls=self.tls,
                                    context=self.ssl_context)


def bench_certificate(tmpdir: Path, name: str) -> tuple[Path, Path, Path]:
    """A server certificate for 127.0.0.1 from the run's PKI: (cert, key, CA file)."""
    from mssante.pki.ca import PKI

    pki = PKI.create_or_load(tmpdir / "pki")
    issued = pki.issue_server(f"imap.{name}.bench.invalid", organisation="IMAP BENCH",
                              ip_addresses=["127.0.0.1"], dns_names=["localhost"],
                              out_dir=tmpdir / "certs", name=name)
    return issued.cert_file, issued.key_file, pki.root_cert_file


def client_context(ca_file: Path) -> ssl.SSLContext:
    from mssante.pki.tls import client_context as context

    return context(ca_file)


async def start_dovecot(tmpdir: Path, n_messages: int, corpus: Corpus, *, tls: str | None,
                        max_connections: int) -> ServerHandle:
    """Dovecot (bench/peers/dovecot.py) holding the corpus, on free ports."""
    from bench.peers.dovecot import Dovecot, ensure_dovecot_installed
    from bench.peers.system import free_ports

    version = await asyncio.to_thread(ensure_dovecot_installed)
    accounts = corpus.accounts(n_messages)
    port, tls_port = free_ports(2)
    cert = key = ca = None
    if tls is not None:
        cert, key, ca = bench_certificate(tmpdir, "dovecot")
    server = Dovecot(tmpdir / "dovecot", port=port, users={a.address: a.password
                                                           for a in accounts},
                     tls_port=tls_port if tls else None, tls_cert=cert, tls_key=key,
                     max_connections=max_connections)
    t0 = time.perf_counter()
    for account in accounts:
        await asyncio.to_thread(server.write_messages, account.address,
                                account.items(corpus), uidvalidity=1)
    await asyncio.to_thread(os.sync)  # no writeback of the corpus during the measures
    log(f"Dovecot: {sum(a.count for a in accounts)} messages written in "
        f"{time.perf_counter() - t0:.1f} s")
    await asyncio.to_thread(server.start)

    async def stop() -> None:
        problems = server.log_problems()
        if problems:
            log("Dovecot log: " + "\n  ".join(problems[:10]))
        await asyncio.to_thread(server.stop)

    connect_port = tls_port if tls == "implicit" else port
    return ServerHandle(
        f"Dovecot {version}", "127.0.0.1", connect_port, tls,
        client_context(ca) if ca is not None else None, accounts, server.processes, stop,
        note=(f"Dovecot {version}: Maildir, one imap process per connection, login processes "
              f"in high-performance mode, fsync optimized (bench/peers/dovecot.py)"))


async def start_mssante(tmpdir: Path, n_messages: int, corpus: Corpus, *, tls: str | None,
                        postgres: str | None = None, processes: int = 1,
                        audit: bool = True, profile: Path | None = None) -> ServerHandle:
    """mssante's IMAP server holding ``corpus.accounts(n_messages)``: a SQLite store in
    ``tmpdir`` (or, with ``postgres``, a new schema in that PostgreSQL database,
    dropped at the end), one person and one PER mailbox per account (password hashed
    as in production), the corpus loaded in order with ``store.folders.bulk_append``
    (UID k of each INBOX = message k of the account), then the server alone in a
    process of its own (bench/imap_server.py), so that ``pids`` measures the server
    alone. With ``profile`` (one process only), pyinstrument runs the server and writes
    its text report there when it stops."""
    from bench.peers.system import free_ports
    from mssante.auth.passwords import hash_password
    from mssante.domain.mailboxes import MailboxType, PersonKind, Rules
    from mssante.store import open_store

    if tls not in ("implicit", "starttls"):
        raise SystemExit("mssante's IMAP server logs in over TLS only: --tls implicit|starttls")
    schema: str | None = None
    if postgres:
        url = postgres
        schema = f"bench_imap_{os.getpid()}"
        await _postgres_schema(url, f'CREATE SCHEMA "{schema}"')
        note = f"mssante: PostgreSQL store (schema {schema}), {_processes(processes)}, uvloop"
    else:
        database = tmpdir / "mssante" / "operator.sqlite3"
        database.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{database}"
        note = f"mssante: SQLite store (WAL, synchronous=FULL), {_processes(processes)}, uvloop"
    accounts = corpus.accounts(n_messages)
    process: asyncio.subprocess.Process | None = None
    try:  # a failure here must leave no schema and no server behind
        store = await open_store(url, schema=schema)
        try:
            t0 = time.perf_counter()
            for account in accounts:
                await store.create_person(account.address, PersonKind.HEALTH,
                                          f"Dr {account.address.split('@')[0]}",
                                          password_hash=hash_password(account.password))
                await store.create_mailbox(account.address, MailboxType.PER, rules=Rules(),
                                           owner=account.address)
                for batch in account.batches(corpus):
                    await store.folders.bulk_append(account.address, "INBOX", batch)
        finally:
            await store.close()
        await asyncio.to_thread(os.sync)  # no writeback of the corpus during the measures
        log(f"mssante: {sum(a.count for a in accounts)} messages loaded in "
            f"{time.perf_counter() - t0:.1f} s")
        cert, key, ca = bench_certificate(tmpdir, "mssante")
        [port] = free_ports(1)
        profiler = ([] if profile is None else
                    ["-m", "pyinstrument", "-r", "text", "-o", str(profile)])
        process = await asyncio.create_subprocess_exec(
            sys.executable, *profiler, "-m", "bench.imap_server", "--database", url,
            "--cert", str(cert),
            "--key", str(key), "--ca", str(ca), "--port", str(port), "--tls", tls,
            *(["--schema", schema] if schema else []), "--processes", str(processes),
            *([] if audit else ["--no-audit"]),
            stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent)
        assert process.stdout is not None
        ready = await asyncio.wait_for(process.stdout.readline(), 60)
        if ready.strip() != b"ready":
            raise RuntimeError(f"mssante's IMAP server did not start: {ready!r}")
    except BaseException:
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        if schema:
            await _postgres_schema(url, f'DROP SCHEMA "{schema}" CASCADE')
        raise
    server = process

    async def stop() -> None:
        server.terminate()
        await asyncio.wait_for(server.wait(), 60)
        if schema:
            await _postgres_schema(url, f'DROP SCHEMA "{schema}" CASCADE')

    return ServerHandle(
        "mssante", "127.0.0.1", port, tls, client_context(ca), accounts,
        lambda: _with_children(server.pid) if server.returncode is None else [], stop,
        note=f"{note} (bench/imap_server.py)")


def _processes(count: int) -> str:
    return "one process" if count == 1 else f"{count} processes (SO_REUSEPORT)"


def _with_children(pid: int) -> list[int]:
    """``pid`` and its children (the workers, with ``--processes``)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(int(child) for child in children)]


async def _postgres_schema(url: str, statement: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from mssante.database import database_url

    engine = create_async_engine(database_url(url))
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


# -- the workload -----------------------------------------------------------------------------

@dataclass
class Results:
    values: dict[str, float] = field(default_factory=dict)
    details: dict[str, object] = field(default_factory=dict)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class ClientCPU:
    """The benchmark process's CPU time over a phase, as a share of one core: a check
    that the client is not the bottleneck."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def __str__(self) -> str:
        wall = time.perf_counter() - self.wall
        return f"client CPU {(time.process_time() - self.cpu) / wall:.0%}" if wall else ""


async def op_select_flags(client: Client, expected: int) -> tuple[float, float]:
    """(a) SELECT INBOX and UID FETCH 1:* (FLAGS): their times in seconds."""
    t0 = time.perf_counter()
    exists = await client.select("INBOX")
    t1 = time.perf_counter()
    reply = await client.command(b"UID FETCH 1:* (FLAGS)")
    t2 = time.perf_counter()
    if exists != expected or reply.untagged != expected:
        raise ImapError(f"SELECT gave {exists} EXISTS and FETCH {reply.untagged} responses, "
                        f"expected {expected}")
    return t1 - t0, t2 - t1


async def op_fetch_bodies(client: Client, first: int, count: int, batch: int
                          ) -> tuple[float, int, int]:
    """(b) UID FETCH first..first+count-1 (BODY.PEEK[]) in batches: (s, messages, octets)."""
    messages = octets = 0
    t0 = time.perf_counter()
    for lo in range(first, first + count, batch):
        hi = min(lo + batch, first + count) - 1
        reply = await client.command(b"UID FETCH %d:%d (BODY.PEEK[])" % (lo, hi))
        messages += reply.literals
        octets += reply.literal_bytes
    return time.perf_counter() - t0, messages, octets


def search_command(index: int) -> bytes:
    """(c) the index-th search: HEADER Subject and FROM in turn."""
    if index % 2 == 0:
        word = SEARCH_SUBJECT_WORDS[(index // 2) % len(SEARCH_SUBJECT_WORDS)]
        return b'UID SEARCH HEADER Subject "' + word.encode() + b'"'
    word = SEARCH_FROM_WORDS[(index // 2) % len(SEARCH_FROM_WORDS)]
    return b'UID SEARCH FROM "' + word.encode() + b'"'


async def op_search(client: Client, index: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    reply = await client.command(search_command(index), keep=True)
    elapsed = time.perf_counter() - t0
    m = re.search(rb"(?:^|\r\n)\* SEARCH([^\r\n]*)", reply.data)
    return elapsed, len(m.group(1).split()) if m else -1


async def op_store(client: Client, lo: int, hi: int) -> float:
    """(d) +FLAGS.SILENT then -FLAGS.SILENT (\\Flagged) on lo:hi; two ranges."""
    t0 = time.perf_counter()
    await client.command(b"UID STORE %d:%d +FLAGS.SILENT (\\Flagged)" % (lo, hi))
    await client.command(b"UID STORE %d:%d -FLAGS.SILENT (\\Flagged)" % (lo, hi))
    return time.perf_counter() - t0


SORTS = (b"UID SORT (REVERSE ARRIVAL) UTF-8 ALL", b"UID SORT (SUBJECT DATE) UTF-8 ALL",
         b"UID SORT (FROM) UTF-8 ALL", b"UID THREAD REFERENCES UTF-8 ALL")


async def run_sort(client: Client, n: int, results: Results) -> None:
    """(c2) SORT and THREAD of the whole main INBOX: the first of each (cold: sort keys
    computed, or Dovecot's cache filled), then the median of ``SORT_REPEAT``."""
    cpu = ClientCPU()
    for command, key in zip(SORTS, ("sort_arrival", "sort_subject", "sort_from", "thread"),
                            strict=True):
        t0 = time.perf_counter()
        reply = await client.command(command, keep=True)
        results.values[key + "_first"] = time.perf_counter() - t0
        if command.startswith(b"UID SORT"):
            found = re.search(rb"\* SORT([^\r\n]*)", reply.data)
            if found is None or len(found.group(1).split()) != n:
                raise ImapError(f"{command.decode()}: not {n} UIDs")
        times = []
        for _ in range(SORT_REPEAT):
            t0 = time.perf_counter()
            await client.command(command)
            times.append(time.perf_counter() - t0)
        results.values[key] = statistics.median(times)
    log("  (c2) " + ", ".join(
        f"{k} {results.values[k + '_first'] * 1000:.0f}/{results.values[k] * 1000:.0f} ms"
        for k in ("sort_arrival", "sort_subject", "sort_from", "thread")) +
        f" (first/then; {cpu})")


SORT_REPEAT = 5


async def run_single(handle: ServerHandle, args: argparse.Namespace, corpus: Corpus,
                     results: Results) -> None:
    """(a)–(e) on the main account, one connection."""
    main = handle.accounts[0]
    n = main.count
    client = await handle.connect()
    try:
        await client.login(main.address, main.password)
        results.details["capabilities"] = sorted(client.capabilities)
        t0 = time.perf_counter()
        exists = await client.select("INBOX")
        results.values["first_select"] = time.perf_counter() - t0
        if exists != n:
            raise ImapError(f"the main INBOX has {exists} messages, expected {n}")
        log(f"  first SELECT: {results.values['first_select'] * 1000:.0f} ms")

        if "select" not in args.skip:
            cpu = ClientCPU()
            selects, fetches = [], []
            for _ in range(args.repeat):
                s, f = await op_select_flags(client, n)
                selects.append(s)
                fetches.append(f)
            results.values["select"] = statistics.median(selects)
            results.values["fetch_flags"] = statistics.median(fetches)
            log(f"  (a) SELECT {results.values['select'] * 1000:.0f} ms, UID FETCH 1:* (FLAGS) "
                f"{results.values['fetch_flags'] * 1000:.0f} ms ({cpu})")

        if "fetch" not in args.skip and n:
            count = min(args.fetch_messages, n)
            first = max(1, (n - count) // 2 + 1)
            cpu = ClientCPU()
            seconds, messages, octets = await op_fetch_bodies(client, first, count, args.batch)
            if messages != count:
                raise ImapError(f"FETCH BODY.PEEK[] returned {messages} bodies, expected {count}")
            results.values["fetch_bodies"] = messages / seconds
            results.values["fetch_mb"] = octets / seconds / 1e6
            log(f"  (b) {messages} bodies in {seconds:.2f} s: {messages / seconds:.0f} msg/s, "
                f"{octets / seconds / 1e6:.1f} MB/s ({cpu})")
            for uid in (first, first + count // 2, first + count - 1):  # bytes as loaded?
                reply = await client.command(b"UID FETCH %d (BODY.PEEK[])" % uid, keep=True)
                bodies = literal_payloads(reply.data)
                if bodies != [corpus.message(main.first + uid - 1)]:
                    raise ImapError(f"UID {uid}: the body differs from the corpus")

        if "search" not in args.skip:
            first_time, first_hits = await op_search(client, 0)
            results.values["search_first"] = first_time
            hits = {search_command(0).decode(): first_hits}
            cpu = ClientCPU()
            times = []
            for i in range(1, args.searches + 1):
                elapsed, found = await op_search(client, i)
                times.append(elapsed)
                hits[search_command(i).decode()] = found
            results.values["search"] = len(times) / sum(times) if times else 0.0
            results.details["search_hits"] = hits
            log(f"  (c) first search {first_time * 1000:.0f} ms, then "
                f"{results.values['search']:.2f} searches/s ({cpu})")

        if "sort" not in args.skip and {"SORT", "THREAD=REFERENCES"} <= client.capabilities:
            await run_sort(client, n, results)

        if "store" not in args.skip and n:
            cpu = ClientCPU()
            total = 0.0
            for k in range(args.store_ranges):
                lo = 1 + (k * 1000) % max(1, n - 999)
                total += await op_store(client, lo, min(n, lo + 999))
            results.values["store"] = 2 * args.store_ranges / total
            log(f"  (d) {results.values['store']:.1f} ranges/s ({cpu})")

        if "append" not in args.skip:
            body = corpus.append_message()
            cpu = ClientCPU()
            t0 = time.perf_counter()
            for _ in range(args.appends):
                await client.append("INBOX", body)
            results.values["append"] = args.appends / (time.perf_counter() - t0)
            log(f"  (e) {results.values['append']:.0f} appends/s "
                f"({'LITERAL+' if 'LITERAL+' in client.capabilities else 'synchronising'}, "
                f"{cpu})")
    finally:
        await client.logout()


async def run_mix(handle: ServerHandle, args: argparse.Namespace, corpus: Corpus,
                  results: Results) -> None:
    """(f) one connection per client account, all at once."""
    accounts = handle.accounts[1:]
    if not accounts:
        return
    body = corpus.append_message()
    clients = []
    for account in accounts:
        client = await handle.connect()
        await client.login(account.address, account.password)
        clients.append((client, account))
    start = asyncio.Event()

    async def one(client: Client, account: Account, k: int) -> int:
        await start.wait()
        m = account.count
        commands = 0
        for r in range(args.rounds):
            await op_select_flags(client, m + r)  # + the messages appended so far
            lo = 1 + (k * 37 + r * 20) % max(1, m - 19)
            await client.command(b"UID FETCH %d:%d (BODY.PEEK[])" % (lo, min(m, lo + 19)))
            await op_search(client, k + r)
            lo = 1 + (k * 53 + r * 100) % max(1, m - 99)
            await op_store(client, lo, min(m, lo + 99))
            await client.append("INBOX", body)
            commands += 7
        return commands

    tasks = [asyncio.create_task(one(c, a, k)) for k, (c, a) in enumerate(clients)]
    cpu = ClientCPU()
    t0 = time.perf_counter()
    start.set()
    try:
        counts = await asyncio.gather(*tasks)
    finally:
        for client, _ in clients:
            await client.logout()
    elapsed = time.perf_counter() - t0
    results.values["mix"] = sum(counts) / elapsed
    log(f"  (f) {len(clients)} clients × {args.rounds} rounds: {sum(counts)} commands in "
        f"{elapsed:.1f} s, {results.values['mix']:.0f} commands/s ({cpu})")


async def run_idle(handle: ServerHandle, args: argparse.Namespace,
                   results: Results) -> None:
    """(g) ``--idle`` connections in IDLE, then the server's memory."""
    from bench.peers.dovecot import process_memory

    accounts = handle.accounts[1:] or handle.accounts[:1]
    before = process_memory(handle.pids())
    clients: list[Client] = []
    semaphore = asyncio.Semaphore(args.idle_parallel)
    failures: list[str] = []

    async def one(k: int) -> None:
        account = accounts[k % len(accounts)]
        async with semaphore:
            try:
                client = await handle.connect()
                clients.append(client)
                await client.login(account.address, account.password)
                await client.select("INBOX")
                await client.idle()
            except (ImapError, OSError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(one(k) for k in range(args.idle)))
        opened = time.perf_counter() - t0
        await asyncio.sleep(3)
        after = process_memory(handle.pids())
        established = args.idle - len(failures)
        results.values["idle_connect"] = established / opened
        results.values["idle_pss"] = after.pss
        results.values["idle_rss"] = after.rss
        results.details["idle"] = {
            "established": established, "failures": failures[:5],
            "processes": after.processes, "before_pss": before.pss, "before_rss": before.rss,
            "by_name": {name: {"processes": n, "rss": r, "pss": p}
                        for name, (n, r, p) in sorted(after.by_name.items())}}
        log(f"  (g) {established}/{args.idle} IDLE connections in {opened:.1f} s; "
            f"{after.processes} server processes, PSS {after.pss / 2**20:.0f} MiB, "
            f"RSS {after.rss / 2**20:.0f} MiB")
        if failures:
            log(f"      {len(failures)} failed, e.g. {failures[0]}")
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def run_server(which: str, tmpdir: Path, args: argparse.Namespace, corpus: Corpus
                     ) -> tuple[ServerHandle, Results]:
    tls = None if args.tls == "none" else args.tls
    if which == "dovecot":
        handle = await start_dovecot(tmpdir, args.messages, corpus, tls=tls,
                                     max_connections=max(1000, args.idle + args.clients + 10))
    else:
        handle = await start_mssante(tmpdir, args.messages, corpus, tls=tls,
                                     postgres=args.postgres_url if args.store == "postgres"
                                     else None, processes=args.processes)
    results = Results()
    log(f"{handle.name}: {handle.host}:{handle.port} ({handle.tls or 'plain text'})")
    try:
        await run_single(handle, args, corpus, results)
        if "mix" not in args.skip:
            await run_mix(handle, args, corpus, results)
        if "idle" not in args.skip and args.idle:
            await run_idle(handle, args, results)
    finally:
        await handle.stop()
    return handle, results


# -- the table --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str
    kind: str  # "rate" (higher is better), "time" (lower is better), "memory", "info"
    scale: float = 1.0
    digits: int = 0


def rows(args: argparse.Namespace) -> list[Row]:
    n = f"{args.messages:,}"
    return [
        Row("first_select", f"first SELECT after start ({n} messages)", "ms", "info", 1000),
        Row("select", f"(a) SELECT INBOX ({n} messages)", "ms", "time", 1000),
        Row("fetch_flags", f"(a) UID FETCH 1:* (FLAGS) ({n})", "ms", "time", 1000),
        Row("fetch_bodies", f"(b) UID FETCH BODY.PEEK[], batches of {args.batch}", "msg/s",
            "rate"),
        Row("fetch_mb", "(b) the same in octets", "MB/s", "rate", 1, 1),
        Row("search_first", "(c) first search (cold)", "ms", "info", 1000),
        Row("search", "(c) UID SEARCH HEADER Subject / FROM", "searches/s", "rate", 1, 2),
        Row("sort_subject_first", "(c2) first SORT (SUBJECT DATE) (cold)", "ms", "info",
            1000),
        Row("sort_arrival", f"(c2) UID SORT (REVERSE ARRIVAL) ({n})", "ms", "time", 1000),
        Row("sort_subject", f"(c2) UID SORT (SUBJECT DATE) ({n})", "ms", "time", 1000),
        Row("sort_from", f"(c2) UID SORT (FROM) ({n})", "ms", "time", 1000),
        Row("thread_first", "(c2) first THREAD REFERENCES", "ms", "info", 1000),
        Row("thread", f"(c2) UID THREAD REFERENCES ({n})", "ms", "time", 1000),
        Row("store", "(d) UID STORE ±FLAGS.SILENT on 1,000 UIDs", "ranges/s", "rate", 1, 1),
        Row("append", "(e) APPEND 20 KB", "appends/s", "rate"),
        Row("mix", f"(f) {args.clients} clients mixing a–e", "commands/s", "rate"),
        Row("idle_connect", f"(g) opening {args.idle:,} IDLE connections", "conn/s", "info"),
        Row("idle_pss", f"(g) server memory with {args.idle:,} IDLE: PSS", "MiB", "memory",
            1 / 2**20),
        Row("idle_rss", f"(g) server memory with {args.idle:,} IDLE: RSS sum", "MiB", "info",
            1 / 2**20),
    ]


def render(args: argparse.Namespace, runs: dict[str, tuple[ServerHandle, Results]]
           ) -> Iterator[str]:
    mss = runs.get("mssante")
    dov = runs.get("dovecot")
    mss_name = mss[0].name if mss else "mssante"
    dov_name = dov[0].name if dov else "Dovecot"
    yield f"| operation | unit | {mss_name} | {dov_name} | mssante/Dovecot | goal |"
    yield "|---|---|---:|---:|---:|---|"
    for row in rows(args):
        m = mss[1].values.get(row.key) if mss else None
        d = dov[1].values.get(row.key) if dov else None
        if m is None and d is None:
            continue

        def fmt(value: float | None, row: Row = row) -> str:
            return "–" if value is None else f"{value * row.scale:,.{row.digits}f}"

        ratio, goal = "", ""
        if m is not None and d is not None and m > 0 and d > 0:
            if row.kind == "rate":
                ratio = f"{m / d:.2f}"
            elif row.kind in ("time", "memory"):
                ratio = f"{d / m:.2f}"
        if row.kind in ("rate", "time") and ratio:
            goal = "met" if float(ratio) >= GOAL_RATIO else "**not met**"
            goal = f"≥ {GOAL_RATIO}: {goal}"
        if row.kind == "memory" and m is not None:
            goal = f"< 1 GiB: {'met' if m < GOAL_IDLE_BYTES else '**not met**'}"
        yield f"| {row.label} | {row.unit} | {fmt(m)} | {fmt(d)} | {ratio} | {goal} |"


def compare_hits(runs: dict[str, tuple[ServerHandle, Results]]) -> list[str]:
    if len(runs) < 2:
        return []
    hits = {which: r.details.get("search_hits", {}) for which, (_, r) in runs.items()}
    a, b = hits.get("mssante", {}), hits.get("dovecot", {})
    assert isinstance(a, dict) and isinstance(b, dict)
    return [f"search hits differ for {q}: mssante {a.get(q)}, Dovecot {b.get(q)}"
            for q in sorted(set(a) | set(b)) if a.get(q) != b.get(q)]


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        log(f"warning: open files limited to {hard}; --idle {needed} may fail")


async def amain(args: argparse.Namespace) -> int:
    corpus = Corpus(args.seed, clients=args.clients, client_messages=args.client_messages)
    order = ["mssante", "dovecot"] if args.only == "both" else [args.only]
    runs: dict[str, tuple[ServerHandle, Results]] = {}
    with contextlib.ExitStack() as stack:
        if args.keep:
            tmp = Path(args.keep)
            tmp.mkdir(parents=True, exist_ok=True)
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="mssante-imap-bench-")))
        for which in order:
            log(f"running {which}…")
            workdir = tmp / which
            workdir.mkdir(exist_ok=True)
            runs[which] = await run_server(which, workdir, args, corpus)
    main = corpus.accounts(args.messages)[0]
    print(f"machine: {machine()}")
    print(f"workload: INBOX of {main.count:,} messages "
          f"({_corpus_size(corpus, main):.0f} MB sampled), {args.clients} client accounts of "
          f"{args.client_messages:,}; transport: {args.tls}; seed {args.seed}")
    for line in render(args, runs):
        print(line)
    for _, (handle, results) in runs.items():
        if handle.note:
            print(f"{handle.note}")
        idle = results.details.get("idle")
        if isinstance(idle, dict):
            parts = ", ".join(f"{name} ×{v['processes']}: PSS {v['pss'] / 2**20:.0f} MiB"
                              for name, v in idle["by_name"].items())
            print(f"  {handle.name} with IDLE connections: {parts}")
    problems = compare_hits(runs)
    for problem in problems:
        print(f"WARNING: {problem}")
    if args.out:
        Path(args.out).write_text(json.dumps(
            {which: {"server": h.name, "values": r.values, "details": r.details}
             for which, (h, r) in runs.items()}, indent=2, default=str))
    return 1 if problems else 0


def _corpus_size(corpus: Corpus, account: Account, sample: int = 200) -> float:
    """The INBOX's size in MB, estimated from ``sample`` messages spread over it."""
    if not account.count:
        return 0.0
    step = max(1, account.count // sample)
    sizes = [len(corpus.message(account.first + i)) for i in range(0, account.count, step)]
    return statistics.mean(sizes) * account.count / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--messages", type=int, default=100_000, help="main INBOX size")
    parser.add_argument("--only", choices=["mssante", "dovecot", "both"], default="both")
    parser.add_argument("--tls", choices=["implicit", "starttls", "none"], default="implicit")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite",
                        help="mssante's store")
    parser.add_argument("--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1/test",
                        help="with --store postgres: the database (a schema is made in it)")
    parser.add_argument("--repeat", type=int, default=3, help="(a) repetitions (median)")
    parser.add_argument("--fetch-messages", type=int, default=2000, help="(b) bodies fetched")
    parser.add_argument("--batch", type=int, default=100, help="(b) UIDs per FETCH")
    parser.add_argument("--searches", type=int, default=20, help="(c) timed searches")
    parser.add_argument("--store-ranges", type=int, default=50, help="(d) ranges (×2 STOREs)")
    parser.add_argument("--appends", type=int, default=200, help="(e) APPENDs")
    parser.add_argument("--clients", type=int, default=50, help="(f) concurrent clients")
    parser.add_argument("--client-messages", type=int, default=1000,
                        help="(f) INBOX size of each client account")
    parser.add_argument("--rounds", type=int, default=10, help="(f) rounds per client")
    parser.add_argument("--idle", type=int, default=10_000, help="(g) IDLE connections")
    parser.add_argument("--idle-parallel", type=int, default=100,
                        help="(g) connections being opened at once")
    parser.add_argument("--skip", default="", help="comma-separated: select,fetch,search,sort,"
                        "store,append,mix,idle")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=len(os.sched_getaffinity(0)),
                        help="mssante's IMAP server processes (default: one per core, as "
                             "an operator's workers)")
    parser.add_argument("--keep", help="work in this directory and keep it")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args()
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    raise_fd_limit(args.idle + args.clients + 1024)
    try:
        import uvloop
    except ImportError:
        sys.exit(asyncio.run(amain(args)))
    sys.exit(uvloop.run(amain(args)))


if __name__ == "__main__":
    main()
