"""Sending an alert as the authority's program: select, compose, submit.

- The selection is read from the directory's public extract
  (``Extraction_Correspondance_MSSante``, the file every operator and authority can
  fetch from the trust space) with the rule of ``domain/alerts.py``; addresses are
  deduplicated (a mailbox is one row of the extract) and grouped by domain, so that
  each SMTP transaction's recipients share few destination operators and the sending
  operator's queue relays each group in few transactions. Mailboxes on the liste rouge
  are not in the extract and get no alert.
- The alert is an ordinary message of the authority's APP mailbox, handed in at its
  operator's submission port (STARTTLS, AUTH EXTERNAL with the mailbox's organisation
  certificate): the same rules as any message (operator/sending.py), the same queue.
- At most ``MAX_RECIPIENTS`` recipients per transaction (RFC 5321 §4.5.3.1.8; the
  operator's limit, operator/accept.py); a larger alert is several transactions of one
  message (the same Message-ID, so ``alert status`` counts them together).
- A recipient the operator refuses (a domain no longer on the whitelist, a closed
  mailbox) is reported with the operator's reply; the others are sent.
- MAIL and the RCPTs of a transaction are sent at once (PIPELINING, RFC 2920), one
  command at a time to a server without it.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx

from mssante.config import load_operator_config
from mssante.directory.extract import ExtractRow, read_extract
from mssante.domain.alerts import (
    ALERT_HEADER,
    ALERT_HEADERS,
    AlertError,
    Target,
    message_id,
    selects,
)
from mssante.errors import ConfigError, MSSanteError
from mssante.operator.accept import MAX_RECIPIENTS

SMTP_TIMEOUT = 120.0  # seconds for one SMTP reply (a DATA of 1000 recipients included)


@dataclass(frozen=True, slots=True)
class Authority:
    """The authority's mailbox and what it needs to send: its operator's submission
    endpoint and CA, the mailbox's organisation certificate."""

    mailbox: str
    config: Path  # its operator's operator.toml (the store `alert status` reads)
    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    extract_url: str  # the directory's public extract


def load_environment(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--env {path}: no such file (`mssante up` writes it)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--env {path}: not an environment.json: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--env {path}: not an environment.json")
    return data


def authority_of(env: dict[str, Any], path: Path) -> Authority:
    """The authority described in ``environment.json`` (``authority``, ``applications``)."""
    found = env.get("authority")
    if not isinstance(found, dict) or "mailbox" not in found or "config" not in found:
        raise ConfigError(f"--env {path}: no \"authority\" (written by `mssante up`)")
    mailbox = str(found["mailbox"]).lower()
    application = next((a for a in env.get("applications", [])
                        if str(a.get("mailbox", "")).lower() == mailbox), None)
    if application is None:
        raise ConfigError(f"--env {path}: no certificate for the authority's {mailbox}")
    config = load_operator_config(Path(found["config"]))
    try:
        extract = str(env["directory"]["extract"])
    except (KeyError, TypeError):
        raise ConfigError(f"--env {path}: no directory extract URL") from None
    return Authority(mailbox=mailbox, config=config.path, host=config.submission.host,
                     port=config.submission.port, ca_file=config.tls.ca_file,
                     cert_file=Path(application["cert_file"]),
                     key_file=Path(application["key_file"]), extract_url=extract)


def fetch_extract(url: str, ca_file: Path) -> list[ExtractRow]:
    """The rows of the directory's public extract (rejected lines skipped)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with httpx.Client(verify=context, timeout=60.0) as client, \
                client.stream("GET", url) as response:
            if response.status_code != 200:
                raise MSSanteError(f"the directory's extract: HTTP {response.status_code} "
                                   f"at {url}")
            return [row for row in read_extract(response.iter_lines())
                    if isinstance(row, ExtractRow)]
    except httpx.HTTPError as exc:
        raise MSSanteError(f"the directory's extract at {url}: {exc}") from None


def select_recipients(rows: Iterable[ExtractRow], chosen: Target) -> list[str]:
    """The selected addresses, each once, grouped by domain (then by address)."""
    found = {row.address for row in rows
             if selects(chosen, mailbox_type=str(row.mailbox_type),
                        profession=row.profession_code, specialty=row.skill_code,
                        department=row.department, structure=row.structure_id)}
    if not found:
        raise AlertError(f"no mailbox of the directory matches: {chosen.describe()}")
    return sorted(found, key=lambda a: (a.rpartition("@")[2], a))


def compose(alert_id: str, sender: str, subject: str, text: str) -> bytes:
    """The alert: From the authority's mailbox, To itself (the recipients are only in
    the envelope: a list of thousands of addresses is nobody's business), the alert
    header and the priority fields (domain/alerts.py)."""
    msg = EmailMessage()
    local, _, domain = sender.rpartition("@")
    msg["From"] = HeaderAddress("Alerte sanitaire", local, domain)
    msg["To"] = sender
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id(alert_id, domain)
    msg[ALERT_HEADER] = alert_id
    for name, value in ALERT_HEADERS:
        msg[name] = value
    msg.set_content(text)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


@dataclass
class Submitted:
    recipients: int = 0  # accepted by the authority's operator
    refused: dict[str, str] = field(default_factory=dict)  # address → the operator's reply


def batches(recipients: Sequence[str], size: int = MAX_RECIPIENTS) -> Iterator[Sequence[str]]:
    for start in range(0, len(recipients), size):
        yield recipients[start:start + size]


def submit(authority: Authority, recipients: Sequence[str], body: bytes, *,
           batch: int = MAX_RECIPIENTS) -> Submitted:
    """Hand the alert in at the authority's operator, ``batch`` recipients per
    transaction, authenticated by the mailbox's certificate (RFC 4422 App. A)."""
    context = ssl.create_default_context(cafile=str(authority.ca_file))
    context.load_cert_chain(str(authority.cert_file), str(authority.key_file))
    result = Submitted()
    try:
        with smtplib.SMTP(authority.host, authority.port, timeout=SMTP_TIMEOUT) as smtp:
            smtp.starttls(context=context)
            smtp.ehlo()
            code, reply = smtp.docmd("AUTH", "EXTERNAL =")
            if code != 235:
                raise MSSanteError(f"the authority's operator refused its certificate: "
                                   f"{code} {reply.decode(errors='replace')}")
            for group in batches(recipients, batch):
                transaction(smtp, authority.mailbox, group, body, result)
    except (OSError, smtplib.SMTPException) as exc:
        raise MSSanteError(f"submission at {authority.host}:{authority.port}: {exc}") from None
    return result


def transaction(smtp: smtplib.SMTP, sender: str, group: Sequence[str], body: bytes,
                 result: Submitted) -> None:
    """One transaction: MAIL and the RCPTs sent at once when the server pipelines
    (RFC 2920 §3.1: MAIL and RCPT may be grouped, their replies read in order), then
    DATA. The addresses come from the extract's parser: no line end can be in them."""
    commands = [f"MAIL FROM:<{sender}>"] + [f"RCPT TO:<{a}>" for a in group]
    if smtp.has_extn("pipelining"):
        smtp.send("".join(c + "\r\n" for c in commands).encode("ascii"))
        replies = [smtp.getreply() for _ in commands]
    else:
        replies = []
        for command in commands:
            smtp.putcmd(command)
            replies.append(smtp.getreply())
    code, reply = replies[0]
    if code != 250:
        raise MSSanteError(f"MAIL FROM:<{sender}> refused: {code} "
                           f"{reply.decode(errors='replace')}")
    accepted = 0
    for address, (code, reply) in zip(group, replies[1:], strict=True):
        if code in (250, 251):
            accepted += 1
        else:
            result.refused[address] = f"{code} {reply.decode(errors='replace')}"
    if not accepted:
        smtp.rset()
        return
    code, reply = smtp.data(body)
    if code != 250:
        raise MSSanteError(f"the alert was refused: {code} {reply.decode(errors='replace')}")
    result.recipients += accepted
