"""`mssante operator integrate`: the reference receiving program of an APP mailbox. It
logs in to the operator's IMAP with the mailbox's organisation certificate (SASL
EXTERNAL), integrates the documents of each new message of INBOX (content/
integration.py decides, content/xdmfiles.py writes), answers the ones that ask for it
with an integration MDN sent by submission with the same certificate, and marks them.

Implementation notes:
- IMAP keywords (RFC 9051 §2.3.2) carry the state, so that a second run, or another
  copy of the program, processes nothing twice: ``$Integre`` (documents written) or
  ``$IntegrationError`` (refused with a code 900–906), with ``\\Seen``, set as soon as
  the decision is made and the files are written; then ``$MDNSent`` (RFC 3503 §3.1:
  the MDN was sent, or there was none to send) once the MDN is accepted. A message
  marked but without ``$MDNSent`` (the submission failed) gets its MDN on the next
  run; its documents are not written again.
- A message with neither an ``IHE_XDM.ZIP`` attachment nor an ``XDM/`` subject, and a
  report or automatic answer (a KO MDN carries the archive back), is not for this
  program: it is left alone (unmarked, not reported).
- The MDN goes only to the message's sender: a Disposition-Notification-To naming
  another address gets none (``"mdn": "withheld"``; RFC 8098 §2.1).
- The documents of a message go into their own folder of ``--into``,
  ``<UIDVALIDITY>-<UID>-<Message-ID reduced to [A-Za-z0-9._-]>``, created without
  following a symbolic link; a file is never overwritten (content/xdmfiles.py).
- A local failure (a folder that cannot be written, submission unreachable) leaves the
  message as it was for the next run, and the exit status is 1; a refused message is
  not a failure of the program.
- ``--watch`` keeps the session and waits with IDLE (RFC 2177), renewed every
  ``IDLE_RENEW`` seconds (under the 30 minutes a server may wait), until SIGINT or
  SIGTERM.
"""

from __future__ import annotations

import contextlib
import imaplib
import json
import re
import select
import signal
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from mssante.cli.common import err_console, fail, operator_config
from mssante.cli.send import Endpoint, connect, submit
from mssante.config import Listener, OperatorConfig
from mssante.content.integration import (
    Decision,
    DocumentMessage,
    decide,
    integration_mdn,
    read_message,
)
from mssante.content.mdn import MDN_SENT
from mssante.content.xdmfiles import write_documents
from mssante.domain.addresses import AddressSyntaxError, parse_one_mailbox
from mssante.errors import DocumentRefused

INTEGRATED = "$Integre"
INTEGRATION_ERROR = "$IntegrationError"
IDLE_RENEW = 25 * 60.0  # seconds: a server may end an IDLE after 30 minutes (RFC 2177)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EXISTS = re.compile(rb"^\* \d+ (EXISTS|RECENT)", re.I)


class LocalFailure(Exception):
    """This side failed (disk, network): the message is left for the next run."""


@dataclass(slots=True)
class Settings:
    mailbox: str
    into: Path
    imap: Endpoint
    submission: Endpoint
    cert: tuple[Path, Path]
    authors: frozenset[str] | None
    patients: frozenset[str] | None
    uidvalidity: str = "0"  # INBOX's, read at SELECT: part of each message's folder name


@dataclass(slots=True)
class Outcome:
    message_id: str | None
    status: str  # processed | error
    code: int | None
    files: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    mdn: str = "none"  # sent | none (not asked) | withheld (asked for someone else)

    def as_json(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "status": self.status, "code": self.code,
                "files": self.files, "reasons": self.reasons, "mdn": self.mdn}


def _endpoint(config: OperatorConfig, implicit: Listener, starttls: Listener,
              what: str) -> Endpoint:
    """The operator's listener of ``what`` (implicit TLS preferred), as a client reaches
    it: a wildcard address is the operator's host name."""
    listener, is_implicit = (implicit, True) if implicit.port else (starttls, False)
    if not listener.port:
        raise fail(f"{config.path}: no [{what}] listener to connect to")
    host = listener.host
    if host in ("", "0.0.0.0", "::"):
        host = config.autoconfig.host or config.operator.hostname
    return Endpoint(host, listener.port, is_implicit, str(config.tls.ca_file))


def _list_file(path: Path | None, what: str) -> frozenset[str] | None:
    if path is None:
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{what} {path}: {exc}") from None
    return frozenset(line.split("#")[0].strip() for line in lines
                     if line.split("#")[0].strip())


def _certificate(config: OperatorConfig, mailbox: str, cert: Path | None,
                 key: Path | None) -> tuple[Path, Path]:
    """The APP mailbox's certificate: given, or where `mssante up` puts it
    (``certs/app-<local part>.pem`` and ``.key`` beside the operator's config)."""
    if (cert is None) != (key is None):
        raise fail("give both --cert and --key")
    if cert is not None and key is not None:
        return cert, key
    certs = config.path.parent / "certs"
    name = "app-" + mailbox.rpartition("@")[0]
    found = certs / f"{name}.pem", certs / f"{name}.key"
    if not (found[0].is_file() and found[1].is_file()):
        raise fail(f"no certificate for {mailbox} at {found[0]}: give --cert and --key")
    return found


def _imap(settings: Settings) -> imaplib.IMAP4:
    endpoint = settings.imap
    context = ssl.create_default_context(cafile=endpoint.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(settings.cert[0]), str(settings.cert[1]))
    except (OSError, ssl.SSLError) as exc:
        raise fail(f"certificate {settings.cert[0]}: {exc}") from None
    try:
        if endpoint.implicit:
            client: imaplib.IMAP4 = imaplib.IMAP4_SSL(endpoint.host, endpoint.port,
                                                      ssl_context=context, timeout=60)
        else:
            client = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=60)
            client.starttls(context)
    except ssl.SSLCertVerificationError as exc:
        raise fail(f"IMAP {endpoint.host}:{endpoint.port}: the server's certificate is "
                   f"not trusted ({exc.verify_message})") from None
    except (OSError, imaplib.IMAP4.error) as exc:
        raise fail(f"cannot reach IMAP {endpoint.host}:{endpoint.port}: {exc}") from None
    try:
        client.authenticate("EXTERNAL", lambda _challenge: b"")
    except imaplib.IMAP4.error as exc:
        client.shutdown()
        raise fail(f"certificate login (AUTHENTICATE EXTERNAL) refused: {exc}") from None
    typ, data = client.select("INBOX")
    if typ != "OK":
        client.logout()
        raise fail(f"SELECT INBOX refused: {_text(data)}")
    settings.uidvalidity = _UNSAFE.sub("_", _text(client.response("UIDVALIDITY")[1])) or "0"
    return client


def _text(data: list[Any]) -> str:
    return " ".join(d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d)
                    for d in data if d is not None)


def _search(client: imaplib.IMAP4, *criteria: str) -> list[int]:
    typ, data = client.uid("SEARCH", *criteria)
    if typ != "OK":
        raise LocalFailure(f"UID SEARCH refused: {_text(data)}")
    return [int(uid) for uid in (data[0] or b"").split()]


def _fetch(client: imaplib.IMAP4, uid: int) -> bytes | None:
    typ, data = client.uid("FETCH", str(uid), "(BODY.PEEK[])")
    if typ != "OK":
        raise LocalFailure(f"UID FETCH {uid} refused: {_text(data)}")
    for item in data:
        if isinstance(item, tuple):
            return bytes(item[1])
    return None  # expunged meanwhile


def _mark(client: imaplib.IMAP4, uid: int, *flags: str) -> None:
    typ, data = client.uid("STORE", str(uid), "+FLAGS.SILENT", f"({' '.join(flags)})")
    if typ != "OK":
        raise LocalFailure(f"UID STORE {uid} refused: {_text(data)}")


def _folder_name(uidvalidity: str, uid: int, message_id: str | None) -> str:
    ident = _UNSAFE.sub("_", (message_id or "").strip("<> "))[:80].lstrip(".")
    return f"{uidvalidity}-{uid}" + (f"-{ident}" if ident else "")


def _send_mdn(settings: Settings, message: DocumentMessage, decision: Decision) -> None:
    assert message.notify_to is not None
    mdn = integration_mdn(message, decision, mailbox=settings.mailbox, to=message.notify_to)
    try:
        smtp = connect(settings.submission, settings.cert)
    except typer.Exit:
        raise LocalFailure("submission unreachable") from None
    try:
        code, text = smtp.docmd("AUTH", "EXTERNAL =")
        if code != 235:
            raise LocalFailure(f"AUTH EXTERNAL refused: {code} {text.decode(errors='replace')}")
        try:
            submit(smtp, settings.mailbox, [message.notify_to], mdn.as_bytes(), dsn=False)
        except typer.Exit:
            raise LocalFailure(f"the MDN to {message.notify_to} was refused") from None
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def process(client: imaplib.IMAP4, settings: Settings) -> tuple[list[Outcome], list[str]]:
    """One pass over INBOX: the outcomes of the messages handled, and the local
    failures (the messages they concern are left for the next run)."""
    outcomes: list[Outcome] = []
    failures: list[str] = []
    uidvalidity = settings.uidvalidity
    new = _search(client, "UNKEYWORD", INTEGRATED, "UNKEYWORD", INTEGRATION_ERROR)
    pending = _search(client, "OR", "KEYWORD", INTEGRATED, "KEYWORD", INTEGRATION_ERROR,
                      "UNKEYWORD", MDN_SENT)
    for uid in sorted(set(new) | set(pending)):
        try:
            outcome = _handle(client, settings, uid, uidvalidity, uid in new)
        except LocalFailure as exc:
            failures.append(f"message UID {uid}: {exc}")
            continue
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes, failures


def _handle(client: imaplib.IMAP4, settings: Settings, uid: int, uidvalidity: str,
            is_new: bool) -> Outcome | None:
    raw = _fetch(client, uid)
    if raw is None:
        return None
    message = read_message(raw)
    if not message.for_integration:
        return None
    decision = decide(message, authors=settings.authors, patients=settings.patients)
    outcome = Outcome(message.message_id, "processed" if decision.code is None else "error",
                      decision.code, reasons=list(decision.reasons))
    if is_new:
        if decision.checked is not None and decision.code is None:
            folder = settings.into / _folder_name(uidvalidity, uid, message.message_id)
            try:
                written = write_documents(decision.checked, folder)
            except DocumentRefused as exc:
                raise LocalFailure(str(exc)) from None
            outcome.files = [str(path) for path in written]
        _mark(client, uid, INTEGRATED if decision.code is None else INTEGRATION_ERROR,
              "\\Seen")
    if message.notify_to is not None and not message.mdn_allowed:
        outcome.mdn = "withheld"
    elif message.notify_to is not None:
        try:
            _send_mdn(settings, message, decision)
        except (LocalFailure, OSError, smtplib.SMTPException) as exc:
            outcome.mdn = "failed"
            raise LocalFailure(f"integration MDN not sent (next run will): {exc}") from None
        outcome.mdn = "sent"
    _mark(client, uid, MDN_SENT)
    return outcome


def _report(outcomes: list[Outcome], failures: list[str], as_json: bool) -> None:
    for outcome in outcomes:
        if as_json:
            typer.echo(json.dumps(outcome.as_json(), ensure_ascii=False))
            continue
        what = "processed" if outcome.code is None else \
            f"error {outcome.code}: {'; '.join(outcome.reasons)}"
        typer.echo(f"{outcome.message_id}: {what}; MDN {outcome.mdn}")
        for path in outcome.files:
            typer.echo(f"  wrote {path}")
    for failure in failures:
        err_console.print(f"[bold red]error:[/] {failure}", highlight=False)


def _idle(client: imaplib.IMAP4, stop: list[bool]) -> None:
    """Wait (RFC 2177 IDLE) until the mailbox changes, IDLE_RENEW passes or a stop is
    asked; then DONE and the tagged answer."""
    tag = b"IDLE1"
    client.send(tag + b" IDLE\r\n")
    line = client.readline()
    if not line.startswith(b"+"):
        raise LocalFailure(f"IDLE refused: {line.decode(errors='replace').strip()}")
    sock = client.socket()
    deadline = time.monotonic() + IDLE_RENEW
    while not stop[0] and time.monotonic() < deadline:
        # select, not a socket timeout: a timed-out socket file cannot be read again
        pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
        if not pending and not select.select([sock], [], [], 1.0)[0]:
            continue
        line = client.readline()
        if not line:
            raise LocalFailure("the IMAP server closed the connection")
        if _EXISTS.match(line):
            break
    client.send(b"DONE\r\n")
    while True:
        line = client.readline()
        if not line:
            raise LocalFailure("the IMAP server closed the connection")
        if line.startswith(tag + b" "):
            break


def integrate(
        config: Annotated[Path, typer.Option("--config", "-c",
                                             help="Operator configuration file.")],
        mailbox: Annotated[str, typer.Option("--mailbox", help="The APP mailbox.")],
        into: Annotated[Path, typer.Option(
            "--into", help="Folder the documents go into, one sub-folder per message.")],
        cert: Annotated[Path | None, typer.Option(
            "--cert", help="The mailbox's organisation certificate (PEM; default: "
                           "certs/app-<local part>.pem beside the config).")] = None,
        key: Annotated[Path | None, typer.Option("--key", help="Its key (PEM).")] = None,
        authors: Annotated[Path | None, typer.Option(
            "--authors", help="Allowed authors, one idNatPs a line: another author is "
                              "refused with 901.")] = None,
        patients: Annotated[Path | None, typer.Option(
            "--patients", help="Known patients, one INS a line: another is refused with "
                               "902.")] = None,
        watch: Annotated[bool, typer.Option(
            "--watch", help="Keep going: wait for new messages with IMAP IDLE.")] = False,
        as_json: Annotated[bool, typer.Option(
            "--json", help="One JSON object a message: message_id, status, code, "
                           "files.")] = False) -> None:
    """Integrate the clinical documents arriving in an APP mailbox: check each
    IHE_XDM.ZIP, write its documents, answer with an integration MDN (processed, or
    an error 900–906) when asked, and mark the message."""
    settings_of = operator_config(config)
    try:
        address = parse_one_mailbox(mailbox).addr_spec.lower()
    except AddressSyntaxError as exc:
        raise fail(f"--mailbox {mailbox!r}: {exc}") from None
    settings = Settings(
        mailbox=address, into=into,
        imap=_endpoint(settings_of, settings_of.imaps, settings_of.imap, "imaps"),
        submission=_endpoint(settings_of, settings_of.submissions, settings_of.submission,
                             "submissions"),
        cert=_certificate(settings_of, address, cert, key),
        authors=_list_file(authors, "--authors"), patients=_list_file(patients, "--patients"))
    try:
        into.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"--into {into}: {exc.strerror}") from None
    stop = [False]

    def stop_now(_signum: int, _frame: FrameType | None) -> None:
        stop[0] = True

    if watch:
        signal.signal(signal.SIGTERM, stop_now)
        signal.signal(signal.SIGINT, stop_now)
    client = _imap(settings)
    failed = False
    try:
        while True:
            try:
                outcomes, failures = process(client, settings)
            except (LocalFailure, imaplib.IMAP4.error, OSError) as exc:
                raise fail(str(exc)) from None
            _report(outcomes, failures, as_json)
            failed = failed or bool(failures)
            if not watch or stop[0]:
                break
            try:
                _idle(client, stop)
            except (LocalFailure, imaplib.IMAP4.error, OSError) as exc:
                raise fail(f"IDLE: {exc}") from None
            if stop[0]:
                break
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()
    if failed:
        raise typer.Exit(1)
