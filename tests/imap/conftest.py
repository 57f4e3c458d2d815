"""Fixtures of the IMAP tests that drive a running operator.

They use the suite's shared local environment (tests/conftest.py: trust space and
three operators on 127.0.0.1, in a thread). Tests that change rights or folders
create their own people and mailboxes (``fresh_person``), so that they neither
see nor disturb each other.
"""

from __future__ import annotations

import imaplib
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mssante.auth.passwords import hash_password
from mssante.domain.mailboxes import MailboxType, PersonKind, Rules

HOSPITAL = "ch-xyz.mssante.fr"


@dataclass(frozen=True)
class Account:
    login: str
    password: str
    address: str  # the PER mailbox the person owns ("" for staff)


def tls_context(env: Any, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=env.ca_file)
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


def connect(env: Any, domain: str = HOSPITAL, *, starttls: bool = False,
            cert: tuple[str, str] | None = None) -> imaplib.IMAP4:
    """An IMAP connection to an operator: 993 (implicit TLS) or 143 with STARTTLS."""
    op = env.operator(domain)
    if starttls:
        client = imaplib.IMAP4(op["imap"]["host"], op["imap"]["port"], timeout=30)
        client.starttls(tls_context(env, cert))
        return client
    return imaplib.IMAP4_SSL(op["imaps"]["host"], op["imaps"]["port"],
                             ssl_context=tls_context(env, cert), timeout=30)


def login(env: Any, account: Account | str, domain: str = HOSPITAL) -> imaplib.IMAP4:
    client = connect(env, domain)
    if isinstance(account, str):
        client.login(account, env.password(account))
    else:
        client.login(account.login, account.password)
    return client


def fresh_person(env: Any, *, domain: str = HOSPITAL, kind: PersonKind = PersonKind.HEALTH,
                 mailbox: bool = True) -> Account:
    """A new person with a password (and, for a professional, a PER mailbox)."""
    service = env.service(domain)
    name = f"t{uuid.uuid4().hex[:10]}"
    address = f"{name}@{domain}" if mailbox else ""
    login_name = address or name
    password = uuid.uuid4().hex
    rpps = str(uuid.uuid4().int)[:11] if kind is PersonKind.HEALTH else None

    async def create() -> None:
        store = service.store
        await store.create_person(login_name, kind, f"Test {name}",
                                  password_hash=hash_password(password), rpps=rpps)
        if mailbox:
            await store.create_mailbox(address, MailboxType.PER, rules=Rules(),
                                       owner=login_name)

    env.runner.call(create())
    return Account(login_name, password, address)


def fresh_org(env: Any, responsible: Account, *, domain: str = HOSPITAL,
              mailbox_type: MailboxType = MailboxType.ORG) -> str:
    """A new ORG (or CAB) mailbox with ``responsible``; returns its address."""
    service = env.service(domain)
    address = f"service-{uuid.uuid4().hex[:8]}@{domain}"
    env.runner.call(service.store.create_mailbox(address, mailbox_type, rules=Rules(),
                                                 responsible=[responsible.login]))
    return address


def grant(env: Any, address: str, who: Account, rights: str, *,
          domain: str = HOSPITAL) -> None:
    from mssante.domain.mailboxes import Role

    env.runner.call(env.service(domain).store.grant(address, who.login, Role.AUTHORISED,
                                                    rights=rights, rules=Rules()))


def revoke(env: Any, address: str, who: Account, *, domain: str = HOSPITAL) -> None:
    env.runner.call(env.service(domain).store.revoke(address, who.login))


@pytest.fixture
def imap_env(environment: Any) -> Iterator[Any]:
    """The running local environment (shared by the suite)."""
    yield environment
