"""What the audit trail records: one event per action on health data or on who may
reach it, and the canonical bytes of an entry (its Merkle leaf, audit/merkle.py).

Actions (the ``action`` field):

- mail: ``submission`` (a person or program handed a message in: submission, the
  web), ``reception`` (another operator handed it in over SMTP), ``delivery`` (stored
  in a mailbox of this operator), ``relay`` (the next operator took it: ``250``),
  ``bounce`` (given up, the sender told);
- reading: ``read`` (a message's content served: IMAP FETCH of a body, the web's
  view), ``download`` (an attachment from the web);
- logins: ``login``, ``login.failed``;
- administration: ``admin.<what>`` (people, mailboxes, rights, the queue; a person's
  ways in: ``admin.person.password``, ``admin.person.totp.enrol``,
  ``admin.person.totp.disable``, ``admin.person.contact``,
  ``admin.person.app-password.create``, ``admin.person.app-password.revoke``), never
  with a secret (a password, a TOTP secret, an application password) in any field;
  ``audit.purge`` (entries past retention exported then emptied).

``actor`` says who: a login, a certificate's DN, a PSC identifier, ``cli:<user>`` for
the administration command; ``source`` says from where (protocol and address).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

SUBMISSION = "submission"
RECEPTION = "reception"
DELIVERY = "delivery"
RELAY = "relay"
BOUNCE = "bounce"
READ = "read"
DOWNLOAD = "download"
LOGIN = "login"
LOGIN_FAILED = "login.failed"
PURGE = "audit.purge"
ADMIN = "admin."

# Who makes the administrative changes of this context, and from where: the command
# line sets ``cli:<user>``, a web page the session's login (``acting``); a store method
# records them with its change.
ACTOR: ContextVar[str] = ContextVar("audit_actor", default="unknown")
SOURCE: ContextVar[str] = ContextVar("audit_source", default="")

MAX_FIELD = 2000  # characters kept of any field: an entry never grows without bound


@dataclass(frozen=True, slots=True)
class AuditEvent:
    action: str
    actor: str = ""
    mailbox: str = ""
    message_id: str = ""
    source: str = ""
    detail: str = ""


def actor_of(login: str, psc_subject: str | None = None,
             app_password: int | None = None) -> str:
    """How an entry names who acted: the login, with the PSC identifier (idNatPs) of a
    Pro Santé Connect login or the application password used."""
    actor = login
    if psc_subject:
        actor += f" psc:{psc_subject}"
    if app_password is not None:
        actor += f" app-password:{app_password}"
    return clip(actor)


@contextmanager
def acting(actor: str, source: str) -> Iterator[None]:
    """The administrative changes made inside are recorded as ``actor``'s, from
    ``source``; the previous ones come back after."""
    actor_token, source_token = ACTOR.set(clip(actor)), SOURCE.set(clip(source))
    try:
        yield
    finally:
        SOURCE.reset(source_token)
        ACTOR.reset(actor_token)


def clip(text: str | None) -> str:
    return (text or "")[:MAX_FIELD]


def canonical(seq: int, at: float, event: AuditEvent) -> bytes:
    """The bytes an entry's leaf hash covers: its place in the log, its time and every
    field, as JSON with sorted keys, no spaces, UTF-8."""
    return json.dumps({"seq": seq, "time": repr(float(at)), "action": event.action,
                       "actor": event.actor, "mailbox": event.mailbox,
                       "message_id": event.message_id, "source": event.source,
                       "detail": event.detail}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":")).encode()
