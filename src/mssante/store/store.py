"""The operator's store: people, mailboxes and roles, bodies, mailbox entries, the
outbound queue and patient conversations, on SQLite or PostgreSQL.

Implementation notes:
- Every public method is one transaction (or one autocommit read) and converts
  driver errors at its boundary: integrity errors become Conflict, the rest
  StoreError. Domain refusals (PolicyViolation) pass through untouched.
- A store belongs to the event loop that first uses it (as its engine does).
- Writers on SQLite hold the write lock for the whole transaction (engine.py)
  and, in one process, queue on an asyncio lock first, so they wait in the event
  loop rather than in SQLite's busy handler. On PostgreSQL, invariants that span
  rows (the last responsible of a mailbox, one owner) are checked after locking
  the mailbox row (``FOR UPDATE``), so that two concurrent changes cannot both
  pass.
- accept_message and the queue outcomes (mark_*) go through a group commit
  (batch.py): calls that arrive while a transaction runs share the next one.
  Each call still gets its own result or error, and a refused delivery (unknown
  or deactivated mailbox) writes nothing and takes no UID.
- Bodies are content-addressed (SHA-256) and stored once; a body goes when the
  last mailbox entry or queue entry holding it goes.
- A message's UID and MODSEQ come from its folder row (``folders.uidnext``,
  ``highestmodseq``) in the delivering transaction (RFC 9051 §2.3.1.1: strictly
  ascending per folder). On PostgreSQL the folder rows are locked in id order,
  and existing bodies in hash order, so concurrent deliveries cannot deadlock.
  Delivery goes to INBOX; a message sent through submission is also kept in the
  sender's Sent folder, in the same transaction. IMAP folder operations live in
  folders.py (``store.folders``); every commit that changes a folder is published
  on ``store.changes`` (changes.py).
- A person's home (the mailbox their login's IMAP INBOX shows) is recorded on their
  role (``mailbox_roles.home``), in the transaction that gives them their first PER
  or PAT mailbox, or that deletes the recorded one; ``domain.mailboxes.home_mailbox``
  decides which, so adding mailboxes later never moves it. On PostgreSQL the person's
  row is locked while it is decided.
- Queue claims are leases: ``claimed_until`` set atomically by one UPDATE whose
  subquery selects ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite the write
  lock serialises claimers. A worker that dies loses its lease when it expires.
- Directory publishing (outbox.py): every change of what the directory shows of a
  mailbox (create, delete, close, re-open, description, service, liste rouge,
  responsible people) writes its outbox entry in its own transaction, after
  locking the mailbox row. ``directory_id`` is fixed at creation: PER ``8`` + the
  owner's RPPS, CAB ``8`` + the RPPS of the first listed responsible professional
  having one, ORG and APP the ``structure`` given (idNatSt); without it, and for
  PAT, the mailbox is not published. ``on_directory_entry`` is called after a
  commit that wrote entries (a publisher in another process polls instead).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import (
    Row,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mssante.audit.checkpoint import Signer, Verifier
from mssante.audit.events import ACTOR, ADMIN, SOURCE, AuditEvent
from mssante.database import (
    POSTGRESQL,
    create_engine,
    database_url,
)
from mssante.directory.contact import ADD, DELETE
from mssante.domain.addresses import parse_address
from mssante.domain.mailboxes import (
    MailboxType,
    PersonKind,
    Role,
    Rules,
    check_authorised,
    check_certificate_binding,
    check_owner,
    check_responsible,
    home_mailbox,
    may_send_from,
    personal_mailbox,
)
from mssante.domain.patient import CareNote, Conversation, ProfessionalMessage
from mssante.errors import Conflict, NotFound, PolicyViolation, StoreError
from mssante.pki.names import dn_key
from mssante.store import (
    audit,
    carethreads,
    conversations,
    deliveryids,
    holders,
    migrate,
    outbox,
    receipts,
)
from mssante.store.batch import GroupCommit
from mssante.store.bodies import drop_orphans as drop_orphan_bodies
from mssante.store.changes import ChangeHub
from mssante.store.delivery import (
    INBOX,
    Delivery,
    Refused,
    write_deliveries,
)
from mssante.store.folders import (
    HOLDINGS_OF_LOGIN,
    FolderStore,
    create_default_folders,
    holding,
    read_holdings,
)
from mssante.store.localbus import LocalBus
from mssante.store.logins import LoginStore, home_of, revoke_all_app_passwords
from mssante.store.models import (
    DELIVERED,
    FAILED,
    QUEUE_STATUSES,
    QUEUED,
    READ_WRITE,
    RIGHTS,
    Accepted,
    DeliveryId,
    DirectoryEntry,
    LeaseHolder,
    Mailbox,
    MailboxRole,
    MessageSummary,
    OutboundRecipient,
    Person,
    QueueEntry,
    StoredMessage,
)
from mssante.store.outcomes import Kind, Outcome, write_outcomes
from mssante.store.schema import (
    bodies,
    folders,
    mailbox_roles,
    mailboxes,
    messages,
    persons,
    queue,
    web_sessions,
)
from mssante.store.sessions import EndedStore, SessionStore
from mssante.store.transactions import Transactions

log = logging.getLogger(__name__)

_OWNER_TYPES = (MailboxType.PER, MailboxType.PAT)
_RESPONSIBLE_TYPES = (MailboxType.ORG, MailboxType.APP, MailboxType.CAB)
_HASH_IN_THREAD = 1024 * 1024  # bodies larger than this are hashed off the event loop
_STRUCTURE_TYPES = (MailboxType.ORG, MailboxType.APP)
# idNatSt: a one-digit type then the FINESS, SIREN or SIRET (FINESS of Corsica: 2A, 2B)
_ID_NAT_ST = re.compile(r"^[0-9][0-9A-Za-z]{1,63}$")


async def open_store(url: str, *, schema: str | None = None) -> Store:
    """Create the engine, apply the migrations and return a ready store.

    ``schema`` (PostgreSQL only) puts every table in that schema, created if
    missing, through the connections' ``search_path``.
    """
    parsed = database_url(url)
    if schema is not None and parsed.get_backend_name() != POSTGRESQL:
        raise StoreError("a schema can only be chosen on PostgreSQL")
    engine = create_engine(parsed, schema=schema)
    store = Store(engine, url)
    store.scope = schema or ""
    try:
        async with store.tx.write() as conn:
            if schema is not None:
                quoted = engine.dialect.identifier_preparer.quote_identifier(schema)
                await conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
            await migrate.upgrade(conn)
    except BaseException:
        await engine.dispose()
        raise
    return store


# Point reads of the hot paths, built once: SQLAlchemy keeps a statement's cache key,
# which costs more to compute than the query takes to run.
_MAILBOX_BY_ADDRESS = select(mailboxes).where(mailboxes.c.address == bindparam("address"))
_PERSON_BY_LOGIN = select(persons).where(persons.c.login == bindparam("login"))
_APP_MAILBOXES_OF_DN = select(mailboxes).where(
    mailboxes.c.type == MailboxType.APP.value, mailboxes.c.cert_dn_key == bindparam("key"),
    mailboxes.c.active.is_(True))


class Store:
    """One operator's database. Build it with ``open_store``."""

    url: str
    dialect: str  # "sqlite" | "postgresql"

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.url = url
        # what tells this operator's database from others on one PostgreSQL server
        # (whose notifications are server-wide): its schema, if any
        self.scope = ""
        self.tx = Transactions(engine)  # shared with the folders' repository
        self.dialect = self.tx.dialect
        self._pg = self.tx.postgresql
        self._deliveries: GroupCommit[Delivery, Accepted] = GroupCommit(
            self._deliver_batch, weight=lambda delivery: len(delivery.body))
        self._outcomes: GroupCommit[Outcome, None] = GroupCommit(self._write_outcomes,
                                                                 max_items=256)
        # The audit trail (audit.py): on, every acceptance, delivery, relay, bounce and
        # administrative change writes its entry in its own transaction, and
        # ``audit_record`` writes those of actions that change nothing else (reads,
        # logins), committed in groups with the IMAP sessions' writes (tx.grouped).
        self.audit_enabled = True
        self.folders = FolderStore(self.tx, ChangeHub())
        # second factors, personal addresses, application passwords (logins.py)
        self.logins = LoginStore(self.tx, self._admin)
        # web sessions and logins under way; PSC sessions ended (sessions.py)
        self.sessions = SessionStore(self.tx)
        self.psc_ended = EndedStore(self.tx, self.folders.hub, self.listen_for_changes)
        # Called after a commit that delivered messages, with the local addresses whose
        # INBOX received one (new-message notices, notify/notices.py); it must only
        # take note and return: the acceptance waits for it.
        self.on_delivered: Callable[[Sequence[str]], None] | None = None
        # Called after a commit that wrote directory outbox entries (a publisher's wake).
        self.on_directory_entry: Callable[[], None] | None = None

    async def close(self) -> None:
        """Finish the deliveries in progress and close the connections."""
        await self.psc_ended.stop()
        await self.folders.hub.stop()
        await self._deliveries.wait_idle()
        await self._outcomes.wait_idle()
        await self.tx.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at."""
        async with self.tx.read() as conn:
            return await migrate.current_revision(conn)

    # ---------------------------------------------------------------- people

    async def create_person(self, login: str, kind: PersonKind, display_name: str, *,
                            password_hash: str | None = None,
                            rpps: str | None = None) -> Person:
        if not login:
            raise ValueError("a login cannot be empty")
        person = Person(login=login, kind=PersonKind(kind), display_name=display_name,
                        rpps=rpps, password_hash=password_hash, created_at=time.time())
        async with self.tx.write(conflict=f"a person with login {login!r} exists already",
                               writes_first=True) as conn:
            await self._admin(conn, "person.create",
                              detail=f"{login} ({person.kind.value}) {display_name}")
            await conn.execute(insert(persons).values(
                login=login, kind=person.kind.value, display_name=display_name, rpps=rpps,
                password_hash=password_hash, created_at=person.created_at))
        return person

    async def get_person(self, login: str) -> Person | None:
        async with self.tx.point() as conn:
            row = (await conn.execute(_PERSON_BY_LOGIN, {"login": login})).first()
        return None if row is None else _person(row)

    async def person_by_id_nat_ps(self, id_nat_ps: str) -> Person | None:
        """The person whose idNatPs (``8`` + RPPS, what a CPS card certificate carries
        in its subject's serialNumber) is ``id_nat_ps``; None when no one, or more than
        one person, has that RPPS (a card must never pick one of several accounts)."""
        if len(id_nat_ps) < 2 or not id_nat_ps.startswith("8"):
            return None
        async with self.tx.read() as conn:
            rows = (await conn.execute(select(persons).where(
                persons.c.rpps == id_nat_ps[1:]).limit(2))).all()
        return _person(rows[0]) if len(rows) == 1 else None

    async def list_persons(self) -> list[Person]:
        async with self.tx.read() as conn:
            rows = await conn.execute(select(persons).order_by(persons.c.login))
            return [_person(row) for row in rows]

    async def set_password_hash(self, login: str, password_hash: str) -> None:
        """A new account password (changed or reset); it revokes every application
        password of the person and ends their web sessions, in the same transaction:
        whoever may have taken the account password may have taken what its mail
        clients hold, or be logged in with it; a session an application password
        opened ends as at any revocation (auth/apppasswords.py)."""
        async with self.tx.write(writes_first=True) as conn:
            person_id = (await conn.execute(
                update(persons).where(persons.c.login == login)
                .values(password_hash=password_hash).returning(persons.c.id))).scalar()
            if person_id is None:
                raise NotFound(f"no person with login {login!r}")
            revoked = await revoke_all_app_passwords(conn, int(person_id))
            ended = (await conn.execute(delete(web_sessions).where(
                web_sessions.c.login == login))).rowcount
            detail = f"{login}: new account password"
            if revoked:
                detail += ("; application passwords revoked: "
                           + ", ".join(str(i) for i in revoked))
            if ended:
                detail += f"; web sessions ended: {ended}"
            await self._admin(conn, "person.password",
                              mailbox=await home_of(conn, int(person_id)), detail=detail)

    async def delete_person(self, login: str) -> None:
        """Delete a person and their roles; refused while they own a mailbox or are
        the last responsible of one."""
        async with self.tx.write() as conn:
            await self._admin(conn, "person.delete", detail=login)
            person_id = await self._person_id(conn, login)
            held = select(mailbox_roles.c.mailbox_id).where(
                mailbox_roles.c.person_id == person_id)
            if self._pg:
                await conn.execute(select(mailboxes.c.id).where(mailboxes.c.id.in_(held))
                                   .order_by(mailboxes.c.id).with_for_update())
            others = mailbox_roles.alias("others")
            responsibles = (
                select(func.count()).select_from(others)
                .where(others.c.mailbox_id == mailboxes.c.id,
                       others.c.role == Role.RESPONSIBLE.value)
                .correlate(mailboxes)
                .scalar_subquery())
            rows = await conn.execute(
                select(mailboxes.c.id, mailboxes.c.address, mailbox_roles.c.role, responsibles)
                .join(mailbox_roles, mailbox_roles.c.mailbox_id == mailboxes.c.id)
                .where(mailbox_roles.c.person_id == person_id)
                .order_by(mailboxes.c.address))
            republished: list[int] = []  # their published "responsible" changes
            for mailbox_id, address, role, count in rows:
                if role == Role.OWNER.value:
                    raise Conflict(f"{login} owns {address}: delete the mailbox first")
                if role == Role.RESPONSIBLE.value:
                    if count <= 1:
                        raise Conflict(f"{login} is the last responsible of {address}: grant "
                                       "another responsible first")
                    republished.append(int(mailbox_id))
            await conn.execute(delete(persons).where(persons.c.id == person_id))
            queued = False
            for mailbox_id in sorted(republished):
                queued |= await outbox.enqueue(conn, mailbox_id, ADD, now=time.time())
        self._signal_directory(queued)

    # ------------------------------------------------------------- mailboxes

    async def create_mailbox(self, address: str, type: MailboxType, *, rules: Rules,
                             owner: str | None = None, responsible: Sequence[str] = (),
                             description: str = "", organisation: str = "",
                             service: str = "", cert_dn: str | None = None,
                             structure: str | None = None, liste_rouge: bool = False,
                             digitization: bool = False) -> Mailbox:
        """Create a mailbox with its owner (PER, PAT) or responsible people (ORG, APP,
        CAB); the domain's rules decide who may hold what. ``structure`` is the idNatSt
        of the organisation holding an ORG or APP mailbox in the directory; the new
        mailbox's publication is queued with it when it has a ``directory_id``."""
        parsed = parse_address(address)
        mailbox_type = MailboxType(type)
        responsible = list(dict.fromkeys(responsible))
        if mailbox_type in _OWNER_TYPES and owner is None:
            raise PolicyViolation(f"a {mailbox_type} mailbox needs its owner")
        if mailbox_type in _RESPONSIBLE_TYPES and not responsible:
            raise PolicyViolation(f"a {mailbox_type} mailbox needs at least one responsible "
                                  "professional")
        if mailbox_type is MailboxType.APP and not cert_dn:
            raise PolicyViolation("an APP mailbox needs the DN of the organisation "
                                  "certificate that authenticates its program")
        if mailbox_type is not MailboxType.APP and cert_dn:
            raise PolicyViolation("only APP mailboxes are bound to a certificate")
        cert_key = dn_key(cert_dn) if cert_dn else None
        if cert_dn and cert_key is None:
            raise PolicyViolation(f"not a distinguished name (RFC 4514): {cert_dn!r}")
        if structure is not None:
            if mailbox_type not in _STRUCTURE_TYPES:
                raise PolicyViolation("only ORG and APP mailboxes are published on a structure "
                                      "(PER and CAB: on their professional)")
            if not _ID_NAT_ST.match(structure):
                raise ValueError(f"not a structure identifier (idNatSt): {structure!r}")
        now = time.time()
        mailbox = Mailbox(address=parsed.key, display_address=str(parsed), type=mailbox_type,
                          description=description, organisation=organisation,
                          service=service, cert_dn=cert_dn, active=True,
                          liste_rouge=liste_rouge,
                          digitization=digitization)
        logins = ([owner] if owner is not None else []) + responsible
        uidvalidity = max(1, int(now))  # RFC 9051 §2.3.1.1
        conflict = f"the mailbox {mailbox.address} exists already"
        if cert_dn:  # a race the check below did not see (PostgreSQL): the unique index
            conflict += f", or the certificate {cert_dn} identifies another APP mailbox"
        async with self.tx.write(conflict=conflict) as conn:
            await self._admin(conn, "mailbox.create", mailbox=address,
                              detail=mailbox_type.value + (f" {cert_dn}" if cert_dn else ""))
            if cert_key is not None:
                check_certificate_binding(mailbox.address, cert_dn or "", (await conn.execute(
                    select(mailboxes.c.address).where(mailboxes.c.cert_dn_key == cert_key)
                )).scalar())
            people = await self._people(conn, logins)
            if owner is not None:
                check_owner(mailbox_type, people[owner][1], rules)
                # a home found by the fallback rule is recorded before the new mailbox
                # could take its place (domain.mailboxes.home_mailbox)
                await self._record_home(conn, people[owner][0], owner)
            for login in responsible:
                check_responsible(mailbox_type, people[login][1], rules)
            directory_id = await self._directory_id(conn, mailbox_type, owner, responsible,
                                                    structure)
            mailbox = dataclasses.replace(mailbox, directory_id=directory_id)
            mailbox_id = (await conn.execute(insert(mailboxes).values(
                address=mailbox.address, display_address=mailbox.display_address,
                domain=parsed.domain, type=mailbox_type.value, description=description,
                organisation=organisation, service=service, cert_dn=cert_dn,
                cert_dn_key=cert_key, active=True, uidvalidity=uidvalidity, created_at=now,
                liste_rouge=liste_rouge, directory_id=directory_id, digitization=digitization,
            ).returning(mailboxes.c.id))).scalar_one()
            await create_default_folders(conn, mailbox_id, uidvalidity, now)
            roles = [(owner, Role.OWNER)] if owner is not None else []
            roles += [(login, Role.RESPONSIBLE) for login in responsible]
            await conn.execute(insert(mailbox_roles), [
                {"mailbox_id": mailbox_id, "person_id": people[login][0],
                 "role": role.value, "rights": READ_WRITE} for login, role in roles])
            if owner is not None:
                await self._record_home(conn, people[owner][0], owner)
            queued = await outbox.enqueue(conn, mailbox_id, ADD, now=now)
        self._signal_directory(queued)
        return mailbox

    async def _directory_id(self, conn: AsyncConnection, mailbox_type: MailboxType,
                            owner: str | None, responsible: Sequence[str],
                            structure: str | None) -> str | None:
        """The national id of the directory resource that will hold a new mailbox."""
        if mailbox_type in _STRUCTURE_TYPES:
            return structure
        if mailbox_type is MailboxType.PER and owner is not None:
            logins = [owner]
        elif mailbox_type is MailboxType.CAB:
            logins = list(responsible)
        else:
            return None
        rows = await conn.execute(select(persons.c.login, persons.c.rpps)
                                  .where(persons.c.login.in_(logins)))
        rpps = {row.login: row.rpps for row in rows}
        return next((found for found in (outbox.id_nat_ps(rpps.get(login)) for login in logins)
                     if found is not None), None)

    async def get_mailbox(self, address: str) -> Mailbox | None:
        async with self.tx.point() as conn:
            row = (await conn.execute(_MAILBOX_BY_ADDRESS,
                                      {"address": address.lower()})).first()
        return None if row is None else _mailbox(row)

    async def list_mailboxes(self, domain: str | None = None) -> list[Mailbox]:
        query = select(mailboxes).order_by(mailboxes.c.address)
        if domain is not None:
            query = query.where(mailboxes.c.domain == domain.lower().rstrip("."))
        async with self.tx.read() as conn:
            return [_mailbox(row) for row in await conn.execute(query)]

    async def delete_mailbox(self, address: str) -> None:
        """Delete a mailbox, its roles and its messages (bodies nobody else holds go too)."""
        async with self.tx.write() as conn:
            await self._admin(conn, "mailbox.delete", mailbox=address)
            mailbox_id, _ = await self._lock_mailbox(conn, address)
            active = (await conn.execute(select(mailboxes.c.active)
                                         .where(mailboxes.c.id == mailbox_id))).scalar_one()
            owners = (await conn.execute(
                select(persons.c.id, persons.c.login)
                .join(mailbox_roles, mailbox_roles.c.person_id == persons.c.id)
                .where(mailbox_roles.c.mailbox_id == mailbox_id,
                       mailbox_roles.c.role == Role.OWNER.value))).all()
            # a closed mailbox was withdrawn when it closed
            queued = bool(active) and await outbox.enqueue(conn, mailbox_id, DELETE,
                                                           now=time.time())
            shas = (await conn.execute(delete(messages).where(messages.c.mailbox_id == mailbox_id)
                                       .returning(messages.c.body_sha256))).scalars().all()
            await conn.execute(delete(mailboxes).where(mailboxes.c.id == mailbox_id))
            for person_id, login in owners:  # a deleted home: the next one is recorded
                await self._record_home(conn, int(person_id), login)
            await drop_orphan_bodies(conn, shas, postgresql=self._pg)
        self._signal_directory(queued)

    async def set_mailbox_active(self, address: str, active: bool) -> None:
        """Close (withdrawn from the directory) or re-open (published again) a mailbox;
        setting the state it has already changes nothing."""
        async with self.tx.write(writes_first=True) as conn:
            await self._admin(conn, "mailbox.activate" if active else "mailbox.deactivate",
                              mailbox=address)
            mailbox_id = (await conn.execute(
                update(mailboxes)
                .where(mailboxes.c.address == address.lower(), mailboxes.c.active != active)
                .values(active=active)
                .returning(mailboxes.c.id))).scalar_one_or_none()
            if mailbox_id is None:
                await self._mailbox_exists(conn, address)
                return
            queued = await outbox.enqueue(conn, mailbox_id, ADD if active else DELETE,
                                          now=time.time())
        self._signal_directory(queued)

    async def update_mailbox(self, address: str, *, description: str | None = None,
                             service: str | None = None,
                             liste_rouge: bool | None = None) -> Mailbox:
        """Change what the directory shows of a mailbox (None: leave as is); an open,
        published mailbox whose values changed is published again."""
        wanted: dict[str, Any] = {
            name: value for name, value in (("description", description), ("service", service),
                                            ("liste_rouge", liste_rouge)) if value is not None}
        async with self.tx.write() as conn:
            await self._admin(conn, "mailbox.update", mailbox=address)
            row = (await conn.execute(select(mailboxes)
                                      .where(mailboxes.c.address == address.lower())
                                      .with_for_update())).first()
            if row is None:
                raise NotFound(f"no mailbox {address}")
            changed = {name: value for name, value in wanted.items()
                       if getattr(row, name) != value}
            queued = False
            if changed:
                await conn.execute(update(mailboxes).where(mailboxes.c.id == row.id)
                                   .values(**changed))
                queued = await outbox.enqueue(conn, int(row.id), ADD, now=time.time())
        self._signal_directory(queued)
        return dataclasses.replace(_mailbox(row), **changed)

    async def grant(self, address: str, login: str, role: Role, *, rights: str = READ_WRITE,
                    rules: Rules) -> None:
        """Give ``login`` a role on a mailbox; granting again changes role and rights."""
        if rights not in RIGHTS:
            raise ValueError(f"rights are 'rw' or 'r', not {rights!r}")
        role = Role(role)
        async with self.tx.write() as conn:
            await self._admin(conn, "mailbox.grant", mailbox=address,
                              detail=f"{login}: {role.value} {rights}")
            mailbox_id, mailbox_type = await self._lock_mailbox(conn, address)
            people = await self._people(conn, [login])
            person_id, kind = people[login]
            if role is Role.OWNER:
                check_owner(mailbox_type, kind, rules)
            elif role is Role.RESPONSIBLE:
                check_responsible(mailbox_type, kind, rules)
            else:
                check_authorised(mailbox_type, kind)
            current = await self._roles_by_person(conn, mailbox_id)
            others = {pid: r for pid, r in current.items() if pid != person_id}
            if role is Role.OWNER and Role.OWNER in others.values():
                raise Conflict(f"{address} has an owner already")
            if (current.get(person_id) is Role.RESPONSIBLE and role is not Role.RESPONSIBLE
                    and Role.RESPONSIBLE not in others.values()):
                raise Conflict(f"{login} is the last responsible of {address}")
            values = {"mailbox_id": mailbox_id, "person_id": person_id, "role": role.value,
                      "rights": rights}
            if person_id in current:
                await conn.execute(update(mailbox_roles)
                                   .where(mailbox_roles.c.mailbox_id == mailbox_id,
                                          mailbox_roles.c.person_id == person_id)
                                   .values(role=role.value, rights=rights))
            else:
                await conn.execute(insert(mailbox_roles).values(**values))
            if role is Role.OWNER or current.get(person_id) is Role.OWNER:
                await self._record_home(conn, person_id, login)
            previous = current.get(person_id)
            queued = False
            if role is not previous and Role.RESPONSIBLE in (role, previous):
                # the published "responsible" changes
                queued = await outbox.enqueue(conn, mailbox_id, ADD, now=time.time())
        self._signal_directory(queued)

    async def revoke(self, address: str, login: str) -> None:
        """Take away a person's role; refused for an owner and for the last responsible."""
        async with self.tx.write() as conn:
            await self._admin(conn, "mailbox.revoke", mailbox=address, detail=login)
            mailbox_id, mailbox_type = await self._lock_mailbox(conn, address)
            person_id, _ = (await self._people(conn, [login]))[login]
            current = await self._roles_by_person(conn, mailbox_id)
            role = current.get(person_id)
            if role is None:
                raise NotFound(f"{login} has no role on {address}")
            if role is Role.OWNER:
                raise Conflict(f"{login} owns the {mailbox_type} mailbox {address}: a "
                               f"{mailbox_type} mailbox keeps its owner")
            responsibles = sum(1 for r in current.values() if r is Role.RESPONSIBLE)
            if role is Role.RESPONSIBLE and responsibles <= 1:
                raise Conflict(f"{login} is the last responsible of {address}: a "
                               f"{mailbox_type} mailbox always keeps one")
            await conn.execute(delete(mailbox_roles)
                               .where(mailbox_roles.c.mailbox_id == mailbox_id,
                                      mailbox_roles.c.person_id == person_id))
            queued = role is Role.RESPONSIBLE and await outbox.enqueue(
                conn, mailbox_id, ADD, now=time.time())
        self._signal_directory(queued)

    async def roles(self, address: str) -> list[MailboxRole]:
        """Who holds which role on a mailbox, ordered by role then login."""
        async with self.tx.point() as conn:
            rows = (await conn.execute(
                select(mailboxes.c.id, persons.c.login, persons.c.kind, mailbox_roles.c.role,
                       mailbox_roles.c.rights)
                .select_from(mailboxes)
                .outerjoin(mailbox_roles, mailbox_roles.c.mailbox_id == mailboxes.c.id)
                .outerjoin(persons, persons.c.id == mailbox_roles.c.person_id)
                .where(mailboxes.c.address == address.lower()))).all()
        if not rows:
            raise NotFound(f"no mailbox {address}")
        order = {Role.OWNER: 0, Role.RESPONSIBLE: 1, Role.AUTHORISED: 2}
        found = [MailboxRole(login=row.login, kind=PersonKind(row.kind), role=Role(row.role),
                             rights=row.rights) for row in rows if row.login is not None]
        return sorted(found, key=lambda r: (order[r.role], r.login))

    async def usable_mailboxes(self, login: str) -> frozenset[str]:
        """Lower-case addresses ``login`` may send as (``domain.mailboxes.may_send_from``:
        open, role allowing it, rights including writing; every PER mailbox they own,
        never APP)."""
        held = [holding(row) for row in
                await self.tx.point_rows(HOLDINGS_OF_LOGIN, {"login": login})]
        return frozenset(h.address for h in held if may_send_from(h))

    async def home_mailbox(self, login: str) -> str | None:
        """The mailbox ``login``'s IMAP INBOX and personal namespace show: its home while
        open (``domain.mailboxes.personal_mailbox``), None without one."""
        async with self.tx.point() as conn:
            held = await read_holdings(conn, login=login)
        return personal_mailbox(login, held)

    async def mailboxes_for_certificate(self, dn: str) -> list[Mailbox]:
        """The active APP mailbox bound to the certificate DN ``dn`` (``same_dn``, through
        ``dn_key``), as a list: one at most (``check_certificate_binding``)."""
        key = dn_key(dn)
        if key is None:
            return []
        async with self.tx.point() as conn:
            rows = await conn.execute(_APP_MAILBOXES_OF_DN, {"key": key})
            return [_mailbox(row) for row in rows]

    async def mailbox_for_certificate(self, dn: str) -> Mailbox | None:
        """The active APP mailbox bound to ``dn``, if any."""
        found = await self.mailboxes_for_certificate(dn)
        return found[0] if found else None

    # ------------------------------------------------------------------ mail

    async def accept_message(self, body: bytes, *, envelope_from: str, local: Sequence[str],
                             remote: Sequence[OutboundRecipient], summary: MessageSummary,
                             envid: str | None = None, ret: str | None = None,
                             now: float | None = None, sent: str | None = None,
                             patient: ProfessionalMessage | None = None,
                             care: Sequence[CareNote] = (),
                             reports: Sequence[receipts.ReceiptNote] = (),
                             audit_events: Sequence[AuditEvent] = (),
                             keywords: Sequence[str] = (),
                             delivery_ids: Sequence[DeliveryId] = ()) -> Accepted:
        """Store a message for local mailboxes and queue it for remote recipients, in one
        transaction: when this returns, the message is safe (the SMTP 250 may go).
        ``sent``: the sender's mailbox, whose Sent folder keeps a copy marked \\Seen.
        ``patient``: a professional's message, recorded in the same transaction for each
        local patient recipient (the conversation the patient may reply in).
        ``care``: what the message tells professional mailboxes of this operator of
        their conversations with patients, recorded in the same transaction.
        ``reports``: what a DSN or MDN for local mailboxes says, for the timeline of
        the message it reports on (``receipts.py``), in the same transaction.
        ``audit_events``: the audit trail's entries of this acceptance (audit.py).
        ``keywords``: IMAP keywords the copies in the recipients' INBOX get (an
        authority's alert: domain/alerts.py), never the Sent copy.
        ``delivery_ids``: the other operator's queue entries this message is for
        (XMSS-DELIVERY), recorded in the same transaction (``deliveryids.py``); when a
        transaction committed meanwhile recorded some of them, nothing is written and
        Replayed is raised.

        Unknown local mailbox: NotFound; deactivated one: Conflict; nothing is written
        then. Concurrent calls share a transaction (group commit, ``batch``).
        """
        if len(body) > _HASH_IN_THREAD:  # hashlib lets go of the GIL on large inputs
            sha256 = await asyncio.to_thread(_sha256, body)
        else:
            sha256 = _sha256(body)
        delivery = Delivery(sha256=sha256, body=body,
                            envelope_from=envelope_from,
                            local=tuple(dict.fromkeys(address.lower() for address in local)),
                            remote=tuple(remote), summary=summary, envid=envid, ret=ret,
                            now=now, sent=sent.lower() if sent else None, patient=patient,
                            care=tuple(care), reports=tuple(reports),
                            audit=tuple(audit_events) if self.audit_enabled else (),
                            keywords=tuple(keywords), delivery_ids=tuple(delivery_ids))
        if (not delivery.local and not delivery.remote and not delivery.sent
                and not delivery.care):
            return Accepted(sha256=sha256, message_uids={}, queue_ids=[])
        return await self._deliveries.submit(delivery)

    async def _deliver_batch(self, batch: Sequence[Delivery]) -> list[Accepted | Exception]:
        results: dict[int, Accepted | Exception] = {}
        todo = list(range(len(batch)))
        while todo:
            try:
                async with self.tx.write(writes_first=True) as conn:
                    written = await write_deliveries(conn, [batch[i] for i in todo],
                                                     postgresql=self._pg)
                    if written and written[0].folder_ids:  # other processes' sessions
                        await self.folders.notify(conn, written[0].folder_ids)
            except Refused as refused:  # rolled back: try again without the refused
                for index, error in refused.errors.items():
                    results[todo[index]] = error
                todo = [i for n, i in enumerate(todo) if n not in refused.errors]
                continue
            results.update(zip(todo, written, strict=True))
            if written:
                self.folders.hub.publish(written[0].folder_ids)
                if self.on_delivered is not None:
                    delivered = {a for accepted in written for a in accepted.message_uids}
                    if delivered:
                        self.on_delivered(sorted(delivered))
            todo = []
        return [results[i] for i in range(len(batch))]

    def listen_for_changes(self) -> None:
        """Follow the folder changes (and other news) other processes commit
        (changes.py): on PostgreSQL by LISTEN, on a SQLite file over the local bus
        beside it (localbus.py). A bus that cannot open is logged: the receivers' own
        periodic checks still see every change, later."""
        if self._pg:
            url = self.tx.engine.url.set(drivername="postgresql")
            self.folders.hub.listen(url.render_as_string(hide_password=False))
            return
        database = self.tx.engine.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return
        directory = LocalBus.beside(Path(database))
        try:
            self.folders.hub.open_bus(directory)
        except OSError as exc:
            log.warning("no news between processes over %s: %s", directory, exc)

    async def announce(self, channel: str, payload: str) -> None:
        """Tell the other processes of this database ``payload`` on ``channel``, which
        they ``follow``: ``pg_notify`` on PostgreSQL, the bus on SQLite."""
        if self._pg:
            async with self.tx.write() as conn:
                await conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                                   {"channel": channel, "payload": payload})
        else:
            self.folders.hub.send(channel, payload)

    def follow(self, channel: str, receiver: Callable[[str | None], None]) -> None:
        """Pass what other processes ``announce`` on ``channel`` to ``receiver`` (None:
        some may have been missed), once ``listen_for_changes`` ran."""
        self.folders.hub.follow(channel, receiver)

    async def list_messages(self, address: str, folder: str = INBOX) -> list[StoredMessage]:
        """The messages of a folder of a mailbox (INBOX by default), ordered by UID."""
        async with self.tx.read() as conn:
            rows = (await conn.execute(
                select(messages).join(folders, folders.c.id == messages.c.folder_id)
                .join(mailboxes, mailboxes.c.id == folders.c.mailbox_id)
                .where(mailboxes.c.address == address.lower(), folders.c.name == folder)
                .order_by(messages.c.uid))).all()
            if not rows:
                await self._mailbox_exists(conn, address)
        return [_message(row) for row in rows]

    async def get_body(self, sha256: str) -> bytes:
        async with self.tx.read() as conn:
            data = (await conn.execute(
                select(bodies.c.data).where(bodies.c.sha256 == sha256))).scalar_one_or_none()
        if data is None:
            raise NotFound(f"no body {sha256}")
        return bytes(data)

    async def count_messages(self, address: str | None = None) -> int:
        """Messages in one mailbox, or in all of them."""
        query = select(func.count()).select_from(messages)
        if address is not None:
            query = query.join(mailboxes, mailboxes.c.id == messages.c.mailbox_id).where(
                mailboxes.c.address == address.lower())
        async with self.tx.read() as conn:
            count = int((await conn.execute(query)).scalar_one())
            if count == 0 and address is not None:
                await self._mailbox_exists(conn, address)
        return count

    # ----------------------------------------------------------------- queue

    async def claim_due(self, *, now: float, limit: int, lease: float,
                        holder: str | None = None) -> list[QueueEntry]:
        """Lease up to ``limit`` due entries until ``now + lease`` to ``holder`` (a
        lease_holders id); never the same entry to two claimers. Ordered by
        next_attempt_at."""
        if limit <= 0:
            return []
        due = (select(queue.c.id)
               .where(queue.c.status == QUEUED, queue.c.next_attempt_at <= now,
                      queue.c.claimed_until <= now)
               .order_by(queue.c.next_attempt_at, queue.c.id)
               .limit(limit)
               .with_for_update(skip_locked=True))  # SQLite: rendered as nothing
        async with self.tx.write(writes_first=True) as conn:
            rows = await conn.execute(update(queue).where(queue.c.id.in_(due))
                                      .values(claimed_until=now + lease, claimed_by=holder)
                                      .returning(*queue.c))
            entries = [_queue_entry(row) for row in rows]
        return sorted(entries, key=lambda e: (e.next_attempt_at, e.id))

    async def claim_companions(self, first: QueueEntry, domain: str, *, now: float,
                               limit: int, lease: float,
                               holder: str | None = None) -> list[QueueEntry]:
        """Lease up to ``limit`` more due entries of ``first``'s message (body, sender,
        ENVID, RET) to recipients at ``domain``: they travel in ``first``'s
        transaction (an alert's thousands of recipients at one operator)."""
        if limit <= 0:
            return []
        c = queue.c
        due = (select(c.id)
               .where(c.status == QUEUED, c.next_attempt_at <= now, c.claimed_until <= now,
                      c.body_sha256 == first.body_sha256,
                      c.envelope_from == first.envelope_from,
                      c.envid.is_(None) if first.envid is None else c.envid == first.envid,
                      c.ret.is_(None) if first.ret is None else c.ret == first.ret,
                      func.lower(c.recipient).endswith("@" + domain.lower(), autoescape=True))
               .order_by(c.id).limit(limit)
               .with_for_update(skip_locked=True))  # SQLite: rendered as nothing
        async with self.tx.write(writes_first=True) as conn:
            rows = await conn.execute(update(queue).where(c.id.in_(due))
                                      .values(claimed_until=now + lease, claimed_by=holder)
                                      .returning(*c))
            entries = [_queue_entry(row) for row in rows]
        return sorted(entries, key=lambda e: e.id)

    async def release_claims(self, entry_ids: Sequence[int]) -> None:
        """Give back leases without counting an attempt (a worker stopping cleanly)."""
        if not entry_ids:
            return
        async with self.tx.write() as conn:
            await conn.execute(update(queue)
                               .where(queue.c.id.in_(list(entry_ids)), queue.c.status == QUEUED)
                               .values(claimed_until=0.0, claimed_by=None))

    async def lease_heartbeat(self, holder: LeaseHolder) -> None:
        """``holder`` is alive at ``holder.heartbeat_at`` (leases.py)."""
        async with self.tx.write(writes_first=True) as conn:
            await holders.beat(conn, holder, postgresql=self._pg)

    async def lease_holders(self) -> list[LeaseHolder]:
        async with self.tx.read() as conn:
            return await holders.read(conn)

    async def release_holders(self, holder_ids: Sequence[str]) -> int:
        """Give back the leases of dead holders; returns how many went back."""
        if not holder_ids:
            return 0
        async with self.tx.write(writes_first=True) as conn:
            return await holders.release(conn, holder_ids)

    async def release_orphan_leases(self) -> int:
        """Give back the leases no known holder holds (holders.release_orphans)."""
        async with self.tx.write(writes_first=True) as conn:
            return await holders.release_orphans(conn)

    async def stored_deliveries(self, ids: Sequence[DeliveryId]) -> set[DeliveryId]:
        """Those of ``ids`` (XMSS-DELIVERY) a committed message was stored for."""
        if not ids:
            return set()
        async with self.tx.point() as conn:
            return await deliveryids.stored(conn, ids)

    async def purge_delivery_ids(self, *, before: float) -> int:
        """Forget the XMSS-DELIVERY identifiers received before ``before``."""
        async with self.tx.write(writes_first=True) as conn:
            return await deliveryids.purge(conn, before=before)

    async def mark_delivered(self, entry_id: int, *, now: float, relay: str = "") -> None:
        """Delivered to the next hop ``relay`` (kept for the message's timeline)."""
        await self._outcome(Outcome(Kind.DELIVERED, entry_id, now=now, relay=relay))

    async def mark_deferred(self, entry_id: int, *, next_attempt_at: float,
                            error: str) -> None:
        """Count a failed attempt, schedule the next and release the claim."""
        await self._outcome(Outcome(Kind.DEFERRED, entry_id, next_attempt_at=next_attempt_at,
                                    error=error))

    async def mark_failed(self, entry_id: int, *, error: str, now: float) -> None:
        """Give up: count the attempt, status failed (the caller bounces)."""
        await self._outcome(Outcome(Kind.FAILED, entry_id, error=error, now=now))

    async def mark_delay_notified(self, entry_id: int) -> None:
        await self._outcome(Outcome(Kind.DELAY_NOTIFIED, entry_id))

    async def _outcome(self, outcome: Outcome) -> None:
        await self._outcomes.submit(outcome)

    async def _write_outcomes(self, batch: Sequence[Outcome]) -> list[Exception | None]:
        async with self.tx.write(writes_first=True) as conn:
            return await write_outcomes(conn, batch, audit=self.audit_enabled)

    # ------------------------------------------------------------- audit trail

    async def audit_record(self, events: Sequence[AuditEvent]) -> None:
        """Write the entries of actions that write nothing else (a read, a login); the
        caller answers once this returns, so no such action goes without its entry."""
        if self.audit_enabled and events:
            now = time.time()
            await self.tx.grouped(lambda conn: audit.append_in(conn, events, now=now))

    async def _admin(self, conn: AsyncConnection, what: str, *, mailbox: str = "",
                     detail: str = "") -> None:
        """The entry of an administrative change, in its transaction; the actor is the
        one the command or page set (``audit.events.ACTOR``)."""
        if self.audit_enabled:
            await audit.append(conn, [AuditEvent(ADMIN + what, ACTOR.get(), mailbox.lower(),
                                                 source=SOURCE.get(), detail=detail)],
                               now=time.time())

    async def audit_seal(self, signer: Signer, origin: str) -> str | None:
        """Give waiting entries their place and sign a checkpoint (audit.seal)."""
        async with self.tx.write() as conn:
            return await audit.seal(conn, signer, origin, now=time.time(), postgresql=self._pg)

    async def audit_verify(self, verifier: Verifier, origin: str) -> audit.Verdict:
        async with self.tx.read() as conn:
            return await audit.verify(conn, verifier, origin)

    async def audit_entries(self, *, mailbox: str | None = None, since: float | None = None,
                            limit: int = 1000) -> list[audit.Entry]:
        async with self.tx.read() as conn:
            return await audit.entries(conn, mailbox=mailbox, since=since, limit=limit)

    async def audit_leaves(self, size: int) -> list[bytes]:
        async with self.tx.read() as conn:
            return await audit.leaves(conn, size)

    async def audit_checkpoint(self, size: int | None = None) -> tuple[int, str] | None:
        async with self.tx.read() as conn:
            return await audit.checkpoint_at(conn, size)

    async def audit_purge(self, *, before: float, export_dir: Path, actor: str
                          ) -> tuple[int, Path | None]:
        """Export, then empty, the sealed entries older than ``before`` (audit.purge)."""
        async with self.tx.write() as conn:
            return await audit.purge(conn, before=before, export_dir=export_dir,
                                     now=time.time(), actor=actor)

    async def queue_entries(self, *, status: str | None = None) -> list[QueueEntry]:
        """Queue entries ordered by id, all or those with ``status``."""
        query = select(queue).order_by(queue.c.id)
        if status is not None:
            if status not in QUEUE_STATUSES:
                raise ValueError(f"unknown queue status {status!r}")
            query = query.where(queue.c.status == status)
        async with self.tx.read() as conn:
            return [_queue_entry(row) for row in await conn.execute(query)]

    async def get_queue_entry(self, entry_id: int) -> QueueEntry:
        async with self.tx.point() as conn:
            row = (await conn.execute(select(queue).where(queue.c.id == entry_id))).first()
        if row is None:
            raise NotFound(f"no queue entry {entry_id}")
        return _queue_entry(row)

    async def retry_now(self, entry_id: int | None = None, *, now: float) -> int:
        """Make queued entries due now (a failed one too, when named by id, and it is
        queued again); returns how many entries are now due. Claims in progress are
        left alone."""
        due_now = case((queue.c.next_attempt_at > now, now), else_=queue.c.next_attempt_at)
        async with self.tx.write(writes_first=True) as conn:
            await self._admin(conn, "queue.retry",
                              detail="all" if entry_id is None else f"entry {entry_id}")
            if entry_id is None:
                result = await conn.execute(update(queue).where(queue.c.status == QUEUED)
                                            .values(next_attempt_at=due_now))
                return int(result.rowcount)
            result = await conn.execute(
                update(queue)
                .where(queue.c.id == entry_id, queue.c.status.in_([QUEUED, FAILED]))
                .values(next_attempt_at=case((queue.c.status == FAILED, now), else_=due_now),
                        claimed_until=case((queue.c.status == FAILED, 0.0),
                                           else_=queue.c.claimed_until),
                        finished_at=None, status=QUEUED))
            if result.rowcount:
                return int(result.rowcount)
            if (await conn.execute(select(queue.c.id).where(queue.c.id == entry_id))).first():
                return 0
            raise NotFound(f"no queue entry {entry_id}")

    async def retry_domain(self, domain: str, *, now: float) -> int:
        """Make the queued entries for ``domain`` due now (its next hop answers again);
        returns how many were waiting."""
        async with self.tx.write(writes_first=True) as conn:
            result = await conn.execute(update(queue).where(
                queue.c.status == QUEUED, queue.c.next_attempt_at > now,
                func.lower(queue.c.recipient).endswith("@" + domain.lower(), autoescape=True))
                .values(next_attempt_at=now))
            return int(result.rowcount)

    async def delete_queue_entry(self, entry_id: int) -> None:
        async with self.tx.write(writes_first=True) as conn:
            await self._admin(conn, "queue.delete", detail=f"entry {entry_id}")
            sha = (await conn.execute(delete(queue).where(queue.c.id == entry_id)
                                      .returning(queue.c.body_sha256))).scalar_one_or_none()
            if sha is None:
                raise NotFound(f"no queue entry {entry_id}")
            await drop_orphan_bodies(conn, [sha], postgresql=self._pg)

    async def purge_queue(self, *, finished_before: float) -> int:
        """Delete delivered and failed entries finished before the given time."""
        async with self.tx.write(writes_first=True) as conn:
            shas = (await conn.execute(
                delete(queue).where(queue.c.status.in_([DELIVERED, FAILED]),
                                    queue.c.finished_at < finished_before)
                .returning(queue.c.body_sha256))).scalars().all()
            await drop_orphan_bodies(conn, shas, postgresql=self._pg)
        return len(shas)

    async def next_due(self) -> float | None:
        """When the next queued entry is due (a claimed one: when its lease ends)."""
        due = case((queue.c.claimed_until > queue.c.next_attempt_at, queue.c.claimed_until),
                   else_=queue.c.next_attempt_at)
        async with self.tx.read() as conn:
            value = (await conn.execute(select(func.min(due))
                                        .where(queue.c.status == QUEUED))).scalar_one()
        return None if value is None else float(value)

    # ---------------------------------------------------- directory outbox

    async def claim_directory_entries(self, *, now: float, limit: int,
                                      lease: float) -> list[DirectoryEntry]:
        """Lease up to ``limit`` due entries until ``now + lease``, ordered by id: for
        each address only its earliest pending entry, never to two claimers."""
        if limit <= 0:
            return []
        # A read first: the publisher polls, and an idle poll must not take SQLite's
        # write lock from message deliveries.
        async with self.tx.read() as conn:
            if not await outbox.any_due(conn, now=now):
                return []
        async with self.tx.write(writes_first=True) as conn:
            return await outbox.claim(conn, now=now, limit=limit, lease=lease)

    async def directory_done(self, entry_id: int) -> None:
        """The trust space accepted the entry: the address's next entry may go."""
        async with self.tx.write(writes_first=True) as conn:
            await outbox.done(conn, entry_id)

    async def directory_retry(self, entry_id: int, *, error: str, now: float,
                              first: float = outbox.RETRY_FIRST,
                              cap: float = outbox.RETRY_MAX) -> float | None:
        """Count a failed attempt and schedule the next with capped exponential
        backoff; returns when it is due (None: the entry is gone or failed)."""
        async with self.tx.write(writes_first=True) as conn:
            return await outbox.retry(conn, entry_id, error=error, now=now, first=first,
                                      cap=cap)

    async def directory_failed(self, entry_id: int, *, error: str, now: float) -> None:
        """The trust space refused the entry for good: it stays, failed, with ``error``;
        the address's later entries go on."""
        async with self.tx.write(writes_first=True) as conn:
            await outbox.failed(conn, entry_id, error=error, now=now)

    async def release_directory_claims(self, entry_ids: Sequence[int], *, now: float) -> None:
        """Make leased entries due now without counting an attempt."""
        if not entry_ids:
            return
        async with self.tx.write(writes_first=True) as conn:
            await outbox.release(conn, entry_ids, now=now)

    async def directory_entries(self, *, state: str | None = None) -> list[DirectoryEntry]:
        """Outbox entries by id: all, or those ``pending`` or ``failed``."""
        async with self.tx.read() as conn:
            return await outbox.entries(conn, state)

    async def next_directory_due(self) -> float | None:
        """When the next claimable entry is due; None when nothing is pending."""
        async with self.tx.read() as conn:
            return await outbox.next_due(conn)

    async def republish(self, address: str | None = None) -> int:
        """Queue an ``add`` of every open published mailbox (or of ``address``) with its
        current state; returns how many were queued."""
        query = (select(mailboxes.c.id)
                 .where(mailboxes.c.directory_id.is_not(None), mailboxes.c.active.is_(True))
                 .order_by(mailboxes.c.id)
                 .with_for_update())
        if address is not None:
            query = query.where(mailboxes.c.address == address.lower())
        now = time.time()
        async with self.tx.write() as conn:
            ids = (await conn.execute(query)).scalars().all()
            if address is not None and not ids:
                await self._mailbox_exists(conn, address)
            count = 0
            for mailbox_id in ids:
                count += await outbox.enqueue(conn, int(mailbox_id), ADD, now=now)
        self._signal_directory(count > 0)
        return count

    def _signal_directory(self, queued: bool) -> None:
        if queued and self.on_directory_entry is not None:
            self.on_directory_entry()

    # -------------------------------------------------- patient conversations

    async def conversations(self, patient: str) -> list[Conversation]:
        """The patient's threads, oldest first, each with the professionals in it."""
        async with self.tx.point() as conn:
            return await conversations.read(conn, patient)

    async def threads_of(self, patient: str, message_ids: Sequence[str]) -> list[str]:
        """Threads of the patient's recorded professional messages named in
        ``message_ids``, in the order the ids are given."""
        if not message_ids:
            return []
        async with self.tx.read() as conn:
            return await conversations.threads_of(conn, patient, message_ids)

    # ------------------------------------ a professional's patient conversations

    async def care_threads(self, mailbox: str, state: str | None, offset: int, limit: int
                           ) -> tuple[int, int, list[carethreads.CareThread]]:
        """The mailbox's conversations with patients (``carethreads.page``)."""
        async with self.tx.read() as conn:
            return await carethreads.page(conn, mailbox, state, offset, limit)

    async def care_thread(self, mailbox: str, thread_id: int
                          ) -> tuple[carethreads.CareThread,
                                     list[carethreads.ThreadMessage]] | None:
        """One conversation of the mailbox, with its messages."""
        async with self.tx.read() as conn:
            return await carethreads.by_id(conn, mailbox, thread_id)

    async def care_thread_of(self, mailbox: str, patient: str, thread: str
                             ) -> carethreads.CareThread | None:
        """The mailbox's conversation with ``patient`` rooted at ``thread``."""
        async with self.tx.read() as conn:
            return await carethreads.of_thread(conn, mailbox, patient, thread)

    async def timeline(self, message_id: str, *, mailbox: str | None = None
                       ) -> list[receipts.Timeline]:
        """What became of ``message_id``, per mailbox that sent it (``receipts.py``)."""
        async with self.tx.read() as conn:
            return await receipts.timeline(conn, message_id, mailbox=mailbox)

    async def locate_messages(self, mailbox: str, message_ids: Sequence[str]
                              ) -> dict[str, carethreads.Located]:
        """Where the mailbox keeps each of these messages (by Message-ID)."""
        if not message_ids:
            return {}
        async with self.tx.read() as conn:
            return await carethreads.locate(conn, mailbox, message_ids)

    # --------------------------------------------------------------- helpers

    async def _person_id(self, conn: AsyncConnection, login: str) -> int:
        person_id = (await conn.execute(select(persons.c.id).where(persons.c.login == login))
                     ).scalar_one_or_none()
        if person_id is None:
            raise NotFound(f"no person with login {login!r}")
        return int(person_id)

    async def _people(self, conn: AsyncConnection,
                      logins: Sequence[str]) -> dict[str, tuple[int, PersonKind]]:
        """id and kind of each login; NotFound names the first unknown one."""
        if not logins:
            return {}
        rows = await conn.execute(select(persons.c.id, persons.c.login, persons.c.kind)
                                  .where(persons.c.login.in_(set(logins))))
        people = {row.login: (int(row.id), PersonKind(row.kind)) for row in rows}
        for login in logins:
            if login not in people:
                raise NotFound(f"no person with login {login!r}")
        return people

    async def _lock_mailbox(self, conn: AsyncConnection,
                            address: str) -> tuple[int, MailboxType]:
        row = (await conn.execute(select(mailboxes.c.id, mailboxes.c.type)
                                  .where(mailboxes.c.address == address.lower())
                                  .with_for_update())).first()
        if row is None:
            raise NotFound(f"no mailbox {address}")
        return int(row.id), MailboxType(row.type)

    async def _mailbox_exists(self, conn: AsyncConnection, address: str) -> None:
        found = (await conn.execute(select(mailboxes.c.id)
                                    .where(mailboxes.c.address == address.lower()))).first()
        if found is None:
            raise NotFound(f"no mailbox {address}")

    async def _record_home(self, conn: AsyncConnection, person_id: int, login: str) -> None:
        """Record the home the domain's rule gives a person, if it is not recorded yet;
        once recorded, it stays until that mailbox is deleted (``home_mailbox``). On
        PostgreSQL the person's row is locked first, so that two mailboxes created at
        the same moment for one person cannot both become their home."""
        if self._pg:
            await conn.execute(select(persons.c.id).where(persons.c.id == person_id)
                               .with_for_update())
        home = home_mailbox(login, await read_holdings(conn, person_id=person_id))
        if home is None or home.home:
            return
        await conn.execute(update(mailbox_roles)
                           .where(mailbox_roles.c.person_id == person_id,
                                  mailbox_roles.c.home.is_(True))
                           .values(home=False))
        await conn.execute(update(mailbox_roles)
                           .where(mailbox_roles.c.person_id == person_id,
                                  mailbox_roles.c.mailbox_id == home.mailbox_id)
                           .values(home=True))

    async def _roles_by_person(self, conn: AsyncConnection, mailbox_id: int) -> dict[int, Role]:
        rows = await conn.execute(select(mailbox_roles.c.person_id, mailbox_roles.c.role)
                                  .where(mailbox_roles.c.mailbox_id == mailbox_id))
        return {int(row.person_id): Role(row.role) for row in rows}



def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _person(row: Row[Any]) -> Person:
    return Person(login=row.login, kind=PersonKind(row.kind), display_name=row.display_name,
                  rpps=row.rpps, password_hash=row.password_hash, created_at=row.created_at)


def _mailbox(row: Row[Any]) -> Mailbox:
    return Mailbox(address=row.address, display_address=row.display_address,
                   type=MailboxType(row.type), description=row.description,
                   organisation=row.organisation, service=row.service, cert_dn=row.cert_dn,
                   active=bool(row.active), liste_rouge=bool(row.liste_rouge),
                   directory_id=row.directory_id, digitization=bool(row.digitization))


def _message(row: Row[Any]) -> StoredMessage:
    return StoredMessage(uid=int(row.uid), message_id=row.message_id,
                         from_header=row.from_header, subject=row.subject,
                         date_header=row.date_header, received_at=row.received_at,
                         size=int(row.size), body_sha256=row.body_sha256,
                         envelope_from=row.envelope_from,
                         flags=frozenset(row.flags.split()))


def _queue_entry(row: Row[Any]) -> QueueEntry:
    return QueueEntry(id=int(row.id), body_sha256=row.body_sha256,
                      envelope_from=row.envelope_from, recipient=row.recipient,
                      orcpt=row.orcpt, notify=frozenset(filter(None, row.notify.split(","))),
                      ret=row.ret, envid=row.envid, status=row.status,
                      attempts=int(row.attempts), next_attempt_at=row.next_attempt_at,
                      created_at=row.created_at, last_error=row.last_error,
                      delay_notified=bool(row.delay_notified), delivered_at=row.delivered_at,
                      claimed_until=row.claimed_until, finished_at=row.finished_at)
