"""What a person logs in with besides their password: the TOTP secret, the personal
address where one-time codes and new-message notices go, the codes sent, and the
application passwords their mail clients use (auth/apppasswords.py).

Implementation notes:
- The TOTP secret is stored sealed (auth/totp.py): this module never sees it in the
  clear, and no value object it hands out carries it but ``TotpRecord``.
- A TOTP time step is used at most once, whatever the number of processes: one
  UPDATE moves ``totp_last_step`` forward only if the step is later than the last
  one accepted (RFC 6238 §5.2), and its row count says whether it did.
- A one-time code is kept hashed, one per person (a new one replaces the last);
  checking it counts the attempt in the same transaction (the person's row locked on
  PostgreSQL, the write lock on SQLite), so that parallel guesses get no more tries
  than the limit, and a right code is deleted as it is accepted: single use.
- An application password is kept as its argon2id hash only; revoking it deletes the
  row, so that the next login, which reads the person's rows afresh, no longer finds
  it, in whichever process (no cache answers "who may log in"). A new account password
  revokes them all (``revoke_all_app_passwords``, in the transaction of the change,
  store.py ``set_password_hash``).
- Every change of a way in (TOTP enrolled or disabled, the personal address, notices
  and code, an application password created or revoked) writes its audit entry
  (``admin.person.<what>``, store/audit.py ``AdminEntry``) in its own transaction, with
  the person's login and what changed, never a secret; its mailbox is the person's
  home (``home_of``), so that the mailbox's entries show it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Row, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mssante.domain.addresses import PATIENT_DOMAIN
from mssante.domain.logins import LoginFactors
from mssante.domain.mailboxes import MailboxType, PersonKind, Role
from mssante.errors import NotFound, PolicyViolation
from mssante.store.audit import AdminEntry
from mssante.store.schema import (
    app_passwords,
    login_codes,
    mailbox_roles,
    mailboxes,
    persons,
)
from mssante.store.transactions import Transactions


class Keep:
    """The value of an argument that leaves a setting as it is."""


KEEP: Final = Keep()
MAX_APP_PASSWORDS = 20  # per person: one per device or program is plenty


@dataclass(frozen=True, slots=True)
class Contact:
    """A person's second factors and personal address, as the store holds them."""

    login: str
    kind: PersonKind
    totp_enrolled: bool
    personal_address: str | None
    notify_messages: bool  # new messages announced at the personal address
    login_code: bool  # a one-time code by mail follows a patient's password

    @property
    def factors(self) -> LoginFactors:
        return LoginFactors(kind=self.kind, totp_enrolled=self.totp_enrolled,
                            login_code=self.login_code,
                            personal_address=self.personal_address)


@dataclass(frozen=True, slots=True)
class TotpRecord:
    sealed: str  # the secret, sealed with the operator's key
    last_step: int | None  # the last time step accepted

    def __repr__(self) -> str:  # never in a log line or a traceback
        return f"TotpRecord(sealed=<{len(self.sealed)} chars>, last_step={self.last_step})"


@dataclass(frozen=True, slots=True)
class AppPassword:
    """An application password as shown to its owner: never the password or its hash."""

    id: int
    label: str  # the device or program, as the person named it
    created_at: float
    last_used_at: float | None  # the last session it opened; None: never used
    last_used_from: str | None  # the client's address then


@dataclass(frozen=True, slots=True)
class AppPasswordHash:
    """An application password as a login checks it."""

    id: int
    password_hash: str  # argon2id
    last_used_at: float | None
    last_used_from: str | None

    def __repr__(self) -> str:  # never in a log line or a traceback
        return f"AppPasswordHash(id={self.id})"


class TooManyAppPasswords(PolicyViolation):
    """The person has ``MAX_APP_PASSWORDS`` already: revoke one first."""


_CONTACT = (persons.c.login, persons.c.kind, persons.c.totp_secret,
            persons.c.personal_address, persons.c.notify_messages, persons.c.login_code)


def _contact(row: Row[*tuple[Any, ...]]) -> Contact:
    return Contact(login=row.login, kind=PersonKind(row.kind),
                   totp_enrolled=row.totp_secret is not None,
                   personal_address=row.personal_address,
                   notify_messages=bool(row.notify_messages), login_code=bool(row.login_code))


class LoginStore:
    """The repository of second factors and personal addresses (``store.logins``)."""

    def __init__(self, tx: Transactions, admin: AdminEntry) -> None:
        self.tx = tx
        self._admin = admin  # the audit entry of a change, in its transaction

    async def contact(self, login: str) -> Contact | None:
        async with self.tx.read() as conn:
            row = (await conn.execute(select(*_CONTACT).where(persons.c.login == login))
                   ).first()
        return None if row is None else _contact(row)

    async def contact_of_mailbox(self, address: str) -> Contact | None:
        """The owner of the patient mailbox ``address`` (None: not a PAT mailbox)."""
        if not address.lower().endswith("@" + PATIENT_DOMAIN):
            return None
        async with self.tx.read() as conn:
            row = (await conn.execute(
                select(*_CONTACT)
                .join(mailbox_roles, mailbox_roles.c.person_id == persons.c.id)
                .join(mailboxes, mailboxes.c.id == mailbox_roles.c.mailbox_id)
                .where(mailboxes.c.address == address.lower(),
                       mailboxes.c.type == MailboxType.PAT.value,
                       mailbox_roles.c.role == Role.OWNER.value))).first()
        return None if row is None else _contact(row)

    async def set_contact(self, login: str, *,
                          personal_address: str | Keep | None = KEEP,
                          notify_messages: bool | Keep = KEEP,
                          login_code: bool | Keep = KEEP) -> Contact:
        """Change what is given (the caller validated the address); NotFound if no one
        has ``login``."""
        values: dict[str, Any] = {}
        if not isinstance(personal_address, Keep):
            values["personal_address"] = personal_address
        if not isinstance(notify_messages, Keep):
            values["notify_messages"] = notify_messages
        if not isinstance(login_code, Keep):
            values["login_code"] = login_code
        async with self.tx.write(writes_first=bool(values)) as conn:
            if values:
                await conn.execute(update(persons).where(persons.c.login == login)
                                   .values(**values))
            row = (await conn.execute(select(*_CONTACT, persons.c.id)
                                      .where(persons.c.login == login))).first()
            if row is None:
                raise NotFound(f"no person with login {login!r}")
            if "personal_address" in values:  # a code sent to the old address goes
                await conn.execute(delete(login_codes).where(
                    login_codes.c.person_id == row.id))
            if values:
                await self._admin(conn, "person.contact",
                                  mailbox=await home_of(conn, int(row.id)),
                                  detail=f"{login}: {_contact_change(values)}")
        return _contact(row)

    # -- TOTP ------------------------------------------------------------------------

    async def set_totp(self, login: str, sealed: str | None) -> None:
        """Enrol (a sealed secret) or disable (None); the last step used is forgotten."""
        async with self.tx.write() as conn:
            query = select(persons.c.id, persons.c.totp_secret).where(persons.c.login == login)
            row = (await conn.execute(query.with_for_update() if self.tx.postgresql
                                      else query)).first()
            if row is None:
                raise NotFound(f"no person with login {login!r}")
            await conn.execute(update(persons).where(persons.c.id == row.id)
                               .values(totp_secret=sealed, totp_last_step=None))
            had = row.totp_secret is not None
            if sealed is not None:
                what, detail = "person.totp.enrol", (
                    f"{login}: a new TOTP secret" + (", replacing the one enrolled" if had
                                                     else ""))
            else:
                what, detail = "person.totp.disable", (
                    f"{login}: TOTP secret forgotten" if had else f"{login}: none was enrolled")
            await self._admin(conn, what, mailbox=await home_of(conn, int(row.id)),
                              detail=detail)

    async def totp(self, login: str) -> TotpRecord | None:
        async with self.tx.read() as conn:
            row = (await conn.execute(
                select(persons.c.totp_secret, persons.c.totp_last_step)
                .where(persons.c.login == login))).first()
        if row is None or row.totp_secret is None:
            return None
        return TotpRecord(row.totp_secret, None if row.totp_last_step is None
                          else int(row.totp_last_step))

    async def use_totp_step(self, login: str, step: int, sealed: str) -> bool:
        """Record that a code of time step ``step`` was accepted, unless a code of that
        step or a later one was already (a replay): False then. ``sealed``: the secret
        the code was checked against, so that a code of a secret replaced meanwhile is
        not taken."""
        async with self.tx.write(writes_first=True) as conn:
            result = await conn.execute(
                update(persons)
                .where(persons.c.login == login, persons.c.totp_secret == sealed,
                       or_(persons.c.totp_last_step.is_(None),
                           persons.c.totp_last_step < step))
                .values(totp_last_step=step))
            return bool(result.rowcount == 1)

    # -- application passwords -------------------------------------------------------

    async def add_app_password(self, login: str, label: str, password_hash: str, *,
                               now: float) -> AppPassword:
        """Keep a new application password of ``login`` (its hash); NotFound if no one
        has the login, TooManyAppPasswords past ``MAX_APP_PASSWORDS``."""
        async with self.tx.write() as conn:
            person_id = await _person_id(conn, login, lock=self.tx.postgresql)
            count = (await conn.execute(select(func.count()).select_from(app_passwords)
                                        .where(app_passwords.c.person_id == person_id))
                     ).scalar_one()
            if count >= MAX_APP_PASSWORDS:
                raise TooManyAppPasswords(
                    f"{login} has {MAX_APP_PASSWORDS} application passwords already: "
                    "revoke one first")
            new_id = (await conn.execute(insert(app_passwords).values(
                person_id=person_id, label=label, password_hash=password_hash,
                created_at=now).returning(app_passwords.c.id))).scalar_one()
            await self._admin(conn, "person.app-password.create",
                              mailbox=await home_of(conn, person_id),
                              detail=f"{login}: application password {new_id} ({label})")
        return AppPassword(int(new_id), label, now, None, None)

    async def app_passwords(self, login: str) -> list[AppPassword]:
        """``login``'s application passwords, oldest first (none for an unknown login)."""
        async with self.tx.read() as conn:
            rows = await conn.execute(
                select(app_passwords.c.id, app_passwords.c.label, app_passwords.c.created_at,
                       app_passwords.c.last_used_at, app_passwords.c.last_used_from)
                .join(persons, persons.c.id == app_passwords.c.person_id)
                .where(persons.c.login == login).order_by(app_passwords.c.id))
            return [AppPassword(int(r.id), r.label, r.created_at, r.last_used_at,
                                r.last_used_from) for r in rows]

    async def app_password_hashes(self, login: str) -> list[AppPasswordHash]:
        """What a login checks an application password of ``login`` against."""
        async with self.tx.read() as conn:
            rows = await conn.execute(
                select(app_passwords.c.id, app_passwords.c.password_hash,
                       app_passwords.c.last_used_at, app_passwords.c.last_used_from)
                .join(persons, persons.c.id == app_passwords.c.person_id)
                .where(persons.c.login == login).order_by(app_passwords.c.id))
            return [AppPasswordHash(int(r.id), r.password_hash, r.last_used_at,
                                    r.last_used_from) for r in rows]

    async def revoke_app_password(self, login: str, app_password_id: int) -> bool:
        """Delete ``login``'s application password ``app_password_id``; False when it
        has none of that id (another person's is never touched)."""
        async with self.tx.write(writes_first=True) as conn:
            row = (await conn.execute(delete(app_passwords).where(
                app_passwords.c.id == app_password_id,
                app_passwords.c.person_id == select(persons.c.id).where(
                    persons.c.login == login).scalar_subquery())
                .returning(app_passwords.c.person_id, app_passwords.c.label))).first()
            if row is None:
                return False
            await self._admin(conn, "person.app-password.revoke",
                              mailbox=await home_of(conn, int(row.person_id)),
                              detail=f"{login}: application password {app_password_id} "
                                     f"({row.label})")
            return True

    async def app_password_live(self, app_password_id: int) -> bool:
        """Whether the application password ``app_password_id`` is still there (not
        revoked): a session it opened ends otherwise."""
        async with self.tx.read() as conn:
            return (await conn.execute(select(app_passwords.c.id).where(
                app_passwords.c.id == app_password_id))).first() is not None

    async def app_password_used(self, app_password_id: int, *, at: float,
                                address: str) -> None:
        """Record that the application password opened a session from ``address``."""
        async with self.tx.write(writes_first=True) as conn:
            await conn.execute(update(app_passwords)
                               .where(app_passwords.c.id == app_password_id)
                               .values(last_used_at=at, last_used_from=address))

    # -- one-time codes --------------------------------------------------------------

    async def put_code(self, login: str, code_hash: str, *, expires_at: float,
                       now: float) -> None:
        """Keep the hash of a code just sent, replacing any earlier one."""
        async with self.tx.write() as conn:
            person_id = await _person_id(conn, login, lock=self.tx.postgresql)
            await conn.execute(delete(login_codes).where(login_codes.c.person_id == person_id))
            await conn.execute(insert(login_codes).values(
                person_id=person_id, code_hash=code_hash, expires_at=expires_at, attempts=0,
                created_at=now))

    async def check_code(self, login: str, code_hash: str, *, now: float,
                         max_attempts: int) -> bool:
        """Whether ``code_hash`` is the hash of the code sent to ``login``, unexpired and
        with attempts left; a right code is used up, and so is a code past its
        attempts or its expiry."""
        async with self.tx.write() as conn:
            try:
                person_id = await _person_id(conn, login, lock=self.tx.postgresql)
            except NotFound:
                return False
            row = (await conn.execute(select(login_codes).where(
                login_codes.c.person_id == person_id))).first()
            if row is None:
                return False
            right = hmac.compare_digest(row.code_hash, code_hash)
            used_up = row.attempts + 1 >= max_attempts
            if right or used_up or row.expires_at <= now:
                await conn.execute(delete(login_codes)
                                   .where(login_codes.c.person_id == person_id))
                return right and row.expires_at > now
            await conn.execute(update(login_codes).where(login_codes.c.person_id == person_id)
                               .values(attempts=login_codes.c.attempts + 1))
            return False


async def revoke_all_app_passwords(conn: AsyncConnection, person_id: int) -> list[int]:
    """Delete every application password of the person, in the caller's transaction
    (a new account password: store.py ``set_password_hash``); their ids."""
    rows = await conn.execute(delete(app_passwords)
                              .where(app_passwords.c.person_id == person_id)
                              .returning(app_passwords.c.id))
    return sorted(int(r.id) for r in rows)


async def home_of(conn: AsyncConnection, person_id: int) -> str:
    """The address of the person's recorded home mailbox, "" without one: the mailbox
    an audit entry about the person names."""
    address = (await conn.execute(
        select(mailboxes.c.address)
        .join(mailbox_roles, mailbox_roles.c.mailbox_id == mailboxes.c.id)
        .where(mailbox_roles.c.person_id == person_id, mailbox_roles.c.home.is_(True))
    )).scalar()
    return "" if address is None else str(address)


def _contact_change(values: dict[str, Any]) -> str:
    """What a change of contact settings set, as an audit entry says it."""
    said = []
    if "personal_address" in values:
        said.append(f"personal address {values['personal_address'] or 'removed'}")
    for name, words in (("notify_messages", "new-message notices"),
                        ("login_code", "one-time login code")):
        if name in values:
            said.append(f"{words} {'on' if values[name] else 'off'}")
    return ", ".join(said)


async def _person_id(conn: AsyncConnection, login: str, *, lock: bool) -> int:
    query = select(persons.c.id).where(persons.c.login == login)
    if lock:
        query = query.with_for_update()
    person_id = (await conn.execute(query)).scalar()
    if person_id is None:
        raise NotFound(f"no person with login {login!r}")
    return int(person_id)
