"""The webmail: the mailboxes a person may use, their folders, the message lists.

Which mailboxes a login sees, and what it may do in each, are the rules IMAP uses
(domain/mailboxes.py: the home mailbox, then every mailbox beside it with its use),
read from the store at every request: a right revoked counts at once.

Paths (``{address}`` a mailbox address, ``{folder}`` a folder id):
- ``GET /courrier``: the last mailbox shown, else the home, else the first one;
- ``GET /courrier/choisir?boite=``: the form of the mailbox switch (works without
  script);
- ``GET /courrier/{address}/dossiers/{folder}?page=&q=``: the message list, newest
  first, ``PAGE_SIZE`` a page, searched in subject and sender when ``q`` is given.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from mssante.domain.mailboxes import MailboxType, Use, beside_home, home_mailbox
from mssante.store.models import Folder
from mssante.web.context import WebContext
from mssante.web.login import session_of, to_login
from mssante.web.sessions import WebSession

PAGE_SIZE = 50
MAX_QUERY = 200
TYPE_LABELS = {MailboxType.PER: "nominative", MailboxType.ORG: "organisationnelle",
               MailboxType.CAB: "cabinet", MailboxType.APP: "applicative",
               MailboxType.PAT: "patient"}
FOLDER_LABELS = {"INBOX": "Boîte de réception", "Sent": "Envoyés", "Drafts": "Brouillons",
                 "Trash": "Corbeille", "Archive": "Archives", "Junk": "Indésirables"}


@dataclass(frozen=True, slots=True)
class MailboxChoice:
    address: str
    type: MailboxType
    use: Use

    @property
    def label(self) -> str:
        return f"{self.address} ({TYPE_LABELS[self.type]})"

    @property
    def writable(self) -> bool:
        return self.use in (Use.WRITE, Use.FULL)


@dataclass(frozen=True, slots=True)
class Row:
    uid: int
    subject: str
    sender: str
    date: str
    unread: bool


def folder_label(folder: Folder) -> str:
    return FOLDER_LABELS.get(folder.name, folder.name)


async def mailboxes_of(web: WebContext, session: WebSession) -> list[MailboxChoice]:
    """The mailboxes the session's person may open now: the home first, then the others
    by address (the IMAP namespaces' rules)."""
    login = session.identity.login
    holdings = await web.runtime.store.folders.access(login)
    home = home_mailbox(login, holdings)
    found = [MailboxChoice(home.address, home.type, Use.FULL)] \
        if home is not None and home.active else []
    found += [MailboxChoice(h.address, h.type, use) for h, use in beside_home(login, holdings)]
    return found


def _date(text: str | None) -> str:
    if not text:
        return ""
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone().strftime("%d/%m/%Y %H:%M")


Opened = tuple[WebSession, list[MailboxChoice], MailboxChoice]


async def open_mailbox(web: WebContext, request: Request, address: str) -> Opened | Response:
    """The session, its mailboxes and the one at ``address`` if it may open it; else the
    answer to give (the login page, a 404 page)."""
    session = session_of(web, request)
    if session is None:
        return to_login()
    choices = await mailboxes_of(web, session)
    chosen = next((c for c in choices if c.address == address.lower()), None)
    if chosen is None:
        return web.page(request, "error.html", session=session, mailboxes=choices,
                        status=404, title="Boîte introuvable",
                        message="Cette boîte aux lettres n'existe pas ou ne vous est "
                                "pas ouverte.")
    session.mailbox = chosen.address
    return session, choices, chosen


def create_router(web: WebContext) -> APIRouter:
    router = APIRouter()
    store = web.runtime.store

    @router.get("/courrier")
    async def home(request: Request) -> Response:
        session = session_of(web, request)
        if session is None:
            return to_login()
        choices = await mailboxes_of(web, session)
        if not choices:
            return web.page(request, "error.html", session=session, mailboxes=choices,
                            status=403, title="Aucune boîte aux lettres",
                            message="Aucune boîte aux lettres ne vous est ouverte ici.")
        chosen = next((c for c in choices if c.address == session.mailbox), choices[0])
        return await _inbox(chosen.address)

    async def _inbox(address: str) -> Response:
        inbox = await store.folders.get(address, "INBOX")
        if inbox is None:
            return RedirectResponse("/courrier", status_code=303)
        return RedirectResponse(f"/courrier/{address}/dossiers/{inbox.id}", status_code=303)

    @router.get("/courrier/choisir")
    async def choose(request: Request, boite: str = "") -> Response:
        found = await open_mailbox(web, request, boite)
        if isinstance(found, Response):
            return found
        return await _inbox(found[2].address)

    @router.get("/courrier/{address}/dossiers/{folder_id}")
    async def folder_list(request: Request, address: str, folder_id: int, page: int = 1,
                          q: str = "") -> Response:
        found = await open_mailbox(web, request, address)
        if isinstance(found, Response):
            return found
        session, choices, chosen = found
        folders = await store.folders.all(chosen.address, viewer=session.identity.login)
        folder = next((f for f in folders if f.id == folder_id), None)
        if folder is None:
            return web.page(request, "error.html", session=session, mailboxes=choices,
                            current=chosen, status=404, title="Dossier introuvable",
                            message="Ce dossier n'existe pas dans cette boîte.")
        state = await store.folders.state(folder.id)
        uids = list(reversed(state.uids)) if state is not None else []
        flags = dict(zip(state.uids, state.flags, strict=True)) if state is not None else {}
        query = q.strip()[:MAX_QUERY]
        if query:
            hits: set[int] = set()
            if query.isascii():
                for field in ("subject", "from"):
                    hits.update(await store.folders.containing(folder.id, field, query))
            else:  # the store's search takes ASCII; accents are compared here
                needle = query.casefold()
                every = await store.folders.summaries(folder.id, uids)
                hits = {uid for uid, (subject, sender, _, _) in every.items()
                        if needle in (subject or "").casefold()
                        or needle in (sender or "").casefold()}
            uids = [u for u in uids if u in hits]
        pages = max(1, -(-len(uids) // PAGE_SIZE))
        page = min(max(page, 1), pages)
        shown = uids[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
        summaries = await store.folders.summaries(folder.id, shown)
        rows = []
        for uid in shown:
            subject, sender, _, date = summaries.get(uid, (None, None, None, None))
            rows.append(Row(uid, subject or "(sans objet)", sender or "", _date(date),
                            "\\Seen" not in flags.get(uid, "").split()))
        return web.page(request, "folder.html", session=session, mailboxes=choices,
                        current=chosen, folders=[(f, folder_label(f)) for f in folders],
                        folder=folder, folder_name=folder_label(folder), rows=rows,
                        page=page, pages=pages, query=query, total=len(uids))

    return router
