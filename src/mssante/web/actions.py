"""Acting on messages in the webmail: delete, move, mark unread or read, important.

``POST /courrier/{address}/dossiers/{folder}/actions``, from a message (its ``uid``) or
from the list (the ``uid`` of each ticked message); the button pressed is ``action``:

- ``deplacer`` with ``vers`` (a folder id of the same mailbox): MOVE (RFC 6851);
- ``supprimer``: MOVE to the folder of special use ``\\Trash`` (RFC 6154), made when the
  mailbox has none; in that folder, a page asks to confirm, then ``confirmer=1`` flags
  the messages ``\\Deleted`` and expunges them by UID (RFC 4315): gone for good;
- ``lu`` / ``non_lu``: ``\\Seen`` added or removed; ``important`` / ``non_important``:
  ``\\Flagged`` added or removed (RFC 9051 §2.3.2).

``POST .../dossiers/{folder}/messages/{uid}/accuse-lecture`` answers the read receipt a
message asks for, where the page offered it (receipts.py, domain/patient.py):
``reponse=envoyer`` sends the MDN (RFC 8098, ``manual-action/MDN-sent-manually;
displayed``) through the sending path, ``reponse=refuser`` sends none; both set
``$MDNSent`` (RFC 3503 §3.1), so the offer is made once. A post for a message that
asks for none, or was answered already, changes nothing. Then 303 to the message.

Every change goes through the store's folder operations that IMAP's MOVE, STORE and UID
EXPUNGE use (store/folders.py: one MODSEQ per change, expunges recorded for QRESYNC, the
change published to IMAP sessions at once): there is no second path. Only where the
person may write in the mailbox (``MailboxChoice.writable``, the rights IMAP gives:
``lr`` for a read-only delegate, who is shown no control and gets 403 for a forged
post); a post without the session's CSRF token gets 403 too. After the change: 303 to
the folder's list (its page and search kept) with a ``role=status`` message.
"""

from __future__ import annotations

import urllib.parse

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from mssante.domain.mailboxes import MailboxType
from mssante.domain.patient import ReadReceipt
from mssante.errors import NotFound, PolicyViolation
from mssante.store.models import Folder
from mssante.web.context import WebContext
from mssante.web.mail import (
    MAX_QUERY,
    TRASH_USE,
    MailboxChoice,
    folder_label,
    message_of,
    open_mailbox,
)
from mssante.web.receipts import (
    decline_receipt,
    notify_addresses,
    receipt_action,
    send_receipt,
)
from mssante.web.render import render_message
from mssante.web.sessions import WebSession, same_token

MAX_SELECTED = 200  # messages one post acts on (a page holds 50)
TRASH_NAME = "Trash"  # the folder made when the mailbox has no \Trash folder
# action -> (flag, "+" or "-", status for one message, status for n messages)
FLAG_ACTIONS = {
    "lu": ("\\Seen", "+", "Message marqué comme lu", "{n} messages marqués comme lus"),
    "non_lu": ("\\Seen", "-", "Message marqué comme non lu",
               "{n} messages marqués comme non lus"),
    "important": ("\\Flagged", "+", "Message marqué comme important",
                  "{n} messages marqués comme importants"),
    "non_important": ("\\Flagged", "-", "Important retiré du message",
                      "Important retiré de {n} messages"),
}


def _said(count: int, one: str, many: str) -> str:
    return one if count == 1 else many.format(n=count)


def create_router(web: WebContext) -> APIRouter:
    router = APIRouter()
    store = web.runtime.store

    def refused(request: Request, session: WebSession, choices: list[MailboxChoice],
                chosen: MailboxChoice, message: str, status: int = 403) -> Response:
        return web.page(request, "error.html", session=session, mailboxes=choices,
                        current=chosen, status=status, title="Action refusée",
                        message=message)

    @router.post("/courrier/{address}/dossiers/{folder_id}/actions")
    async def act(request: Request, address: str, folder_id: int) -> Response:
        found = await open_mailbox(web, request, address)
        if isinstance(found, Response):
            return found
        session, choices, chosen = found
        form = await request.form(max_files=0, max_fields=MAX_SELECTED + 10)
        if not same_token(str(form.get("csrf", "")), session.csrf):
            return refused(request, session, choices, chosen,
                           "Le formulaire a expiré ou ne vient pas de cette page : "
                           "rechargez-la et recommencez.")
        if not chosen.writable:
            return refused(request, session, choices, chosen,
                           "Vous ne pouvez que lire cette boîte : ni supprimer, ni "
                           "déplacer, ni marquer ses messages.")
        folders = await store.folders.all(chosen.address)
        folder = next((f for f in folders if f.id == folder_id), None)
        if folder is None:
            return refused(request, session, choices, chosen,
                           "Ce dossier n'existe pas dans cette boîte.", status=404)
        back = _list_url(chosen, folder, form)
        wanted = [int(u) for u in form.getlist("uid")[:MAX_SELECTED]
                  if isinstance(u, str) and u.isdigit()]
        present = await store.folders.flags(folder.id, wanted) if wanted else {}
        uids = sorted(present)
        action = str(form.get("action", ""))
        if not wanted:
            session.notice = "Aucun message sélectionné."
        elif not uids:
            session.notice = "Ces messages ne sont plus dans ce dossier."
        elif action in FLAG_ACTIONS:
            flag, mode, one, many = FLAG_ACTIONS[action]
            await store.folders.store_flags(folder.id, uids, mode, [flag])
            session.notice = _said(len(uids), one, many)
        elif action == "deplacer":
            target = next((f for f in folders if str(f.id) == str(form.get("vers", ""))
                           and f.id != folder.id), None)
            if target is None:
                session.notice = "Choisissez le dossier vers lequel déplacer."
            else:
                moved = await _move(folder, uids, target)
                session.notice = _said(moved, f"Message déplacé vers {folder_label(target)}",
                                       f"{{n}} messages déplacés vers {folder_label(target)}")
        elif action == "supprimer":
            trash = await store.folders.special(chosen.address, TRASH_USE, TRASH_NAME)
            if trash.id != folder.id:
                moved = await _move(folder, uids, trash)
                session.notice = _said(moved, "Message placé dans la corbeille",
                                       "{n} messages placés dans la corbeille")
            elif form.get("confirmer") != "1":
                return await _confirm(request, session, choices, chosen, folders, folder,
                                      uids, back)
            else:
                await store.folders.store_flags(folder.id, uids, "+", ["\\Deleted"])
                gone = await store.folders.expunge(folder.id, uids)
                session.notice = _said(len(gone), "Message supprimé définitivement",
                                       "{n} messages supprimés définitivement")
        else:
            session.notice = "Action inconnue : rien n'a été changé."
        return RedirectResponse(back, status_code=303)

    @router.post("/courrier/{address}/dossiers/{folder_id}/messages/{uid}/accuse-lecture")
    async def answer_receipt(request: Request, address: str, folder_id: int, uid: int
                             ) -> Response:
        found = await open_mailbox(web, request, address)
        if isinstance(found, Response):
            return found
        session, choices, chosen = found
        form = await request.form(max_files=0, max_fields=10)
        if not same_token(str(form.get("csrf", "")), session.csrf):
            return refused(request, session, choices, chosen,
                           "Le formulaire a expiré ou ne vient pas de cette page : "
                           "rechargez-la et recommencez.")
        if not chosen.writable:
            return refused(request, session, choices, chosen,
                           "Vous ne pouvez que lire cette boîte : vous ne pouvez pas "
                           "répondre à une demande d'accusé de lecture.")
        located = await message_of(web, chosen, folder_id, uid)
        if located is None:
            return refused(request, session, choices, chosen,
                           "Ce message n'existe plus dans ce dossier.", status=404)
        folder, raw = located
        view = render_message(raw)
        flags = (await store.folders.flags(folder.id, [uid])).get(uid, "").split()
        action, _ = receipt_action(raw, view, flags, address=chosen.address,
                                   patient=chosen.type is MailboxType.PAT, writable=True,
                                   folder_name=folder.name)
        back = f"/courrier/{chosen.address}/dossiers/{folder.id}/messages/{uid}"
        answer = str(form.get("reponse", ""))
        if action is not ReadReceipt.OFFER or answer not in ("envoyer", "refuser"):
            session.notice = "Aucun accusé de lecture à envoyer pour ce message."
        elif answer == "refuser":
            await decline_receipt(web.runtime, folder.id, uid)
            session.notice = "Accusé de lecture non envoyé."
        else:
            result = await send_receipt(
                web.runtime, session.identity, chosen.address, folder.id, uid, raw, view,
                automatic=False, client_host=request.client.host if request.client else None)
            session.notice = (
                f"Accusé de lecture envoyé à {', '.join(notify_addresses(view))}."
                if result.sent else
                f"L'accusé de lecture n'a pas pu être envoyé : {result.refused}"
                if result.refused else "Aucun accusé de lecture à envoyer pour ce message.")
        return RedirectResponse(back, status_code=303)

    async def _move(folder: Folder, uids: list[int], target: Folder) -> int:
        try:
            _, moved, _ = await store.folders.copy(folder.id, uids, target.id, move=True)
        except (NotFound, PolicyViolation):
            return 0
        return len(moved)

    async def _confirm(request: Request, session: WebSession, choices: list[MailboxChoice],
                       chosen: MailboxChoice, folders: list[Folder], folder: Folder,
                       uids: list[int], back: str) -> Response:
        """The page asking to confirm deleting for good, listing what would go."""
        summaries = await store.folders.summaries(folder.id, uids)
        subjects = [(uid, (summaries.get(uid, (None,))[0] or "(sans objet)"))
                    for uid in uids]
        return web.page(request, "confirm.html", session=session, mailboxes=choices,
                        current=chosen, folders=[(f, folder_label(f)) for f in folders],
                        folder=folder, subjects=subjects, back=back,
                        title="Supprimer définitivement ?")

    return router


def _list_url(chosen: MailboxChoice, folder: Folder, form: FormData) -> str:
    """The folder's list, at the page and search the form came from."""
    url = f"/courrier/{chosen.address}/dossiers/{folder.id}"
    page = str(form.get("page", ""))
    query = str(form.get("q", ""))[:MAX_QUERY]
    params = {}
    if page.isdigit() and page != "1":
        params["page"] = page
    if query:
        params["q"] = query
    if params:
        url += "?" + urllib.parse.urlencode(params)
    return url
