"""A professional's conversations with patients in the webmail.

- ``GET /courrier/{address}/patients?etat=ouvertes|closes&page=``: the mailbox's
  conversations with patients, open ones first, then by last activity, each with its
  patient, subject, last activity, the patient's replies and its state; an open one
  has a ``Clore la conversation`` button;
- ``GET /courrier/{address}/patients/{id}``: one conversation, its messages in order
  (those this mailbox still holds link to the message);
- ``POST /courrier/{address}/patients/{id}/clore``: closes it;
- ``POST /courrier/{address}/dossiers/{folder}/messages/{uid}/clore``: closes the
  conversation of the message shown.

What is open or closed is what the operator recorded when it accepted each message
(store/carethreads.py, from domain.patient.care_notes): a conversation is closed once
this mailbox's closing message (``X-MSS-MES: FIN``) was accepted. Closing sends that
message through the acceptance path (operator/sending.py), as submission would: the
patient's operator then refuses the patient's replies in it.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from mssante.domain.mailboxes import MailboxType
from mssante.operator import sending
from mssante.operator.accept import RcptParams
from mssante.operator.refusals import Refused
from mssante.store.carethreads import CLOSED, OPEN, CareThread
from mssante.web.compose import Draft, build_message, reply_subject
from mssante.web.context import WEB_PROTOCOL, WebContext
from mssante.web.mail import (
    MailboxChoice,
    folder_label,
    message_of,
    open_mailbox,
    patient_conversation,
)
from mssante.web.render import local_time as when
from mssante.web.render import render_message
from mssante.web.sessions import WebSession, same_token

PAGE_SIZE = 50
STATE_PARAMS = {"ouvertes": OPEN, "closes": CLOSED}
REFERENCES_KEPT = 20  # Message-IDs a closing message names: the root and the latest ones
CLOSING_TEXT = ("Cette conversation est close : vous ne pouvez plus y répondre.\n"
                "Pour toute nouvelle demande, contactez le secrétariat.\n")


@dataclass(frozen=True, slots=True)
class ShownMessage:
    """A message of a conversation as its page lists it."""

    href: str | None  # None: no longer in this mailbox
    subject: str
    when: str
    from_patient: bool
    unread: bool


def subject_of(thread: CareThread) -> str:
    return thread.subject or "(sans objet)"


async def close_conversation(web: WebContext, session: WebSession, chosen: MailboxChoice,
                             patient: str, subject: str, in_reply_to: str,
                             references: str, client_host: str | None) -> str | None:
    """Send, as ``chosen``, the message that closes the conversation with ``patient``
    (``X-MSS-MES: FIN``, in the thread ``references`` names); None once accepted, else
    the reason it was refused."""
    runtime = web.runtime
    person = await runtime.store.get_person(session.identity.login)
    draft = Draft(chosen.address, person.display_name if person else "", (patient,), (),
                  reply_subject(subject, "Re: "), CLOSING_TEXT, in_reply_to=in_reply_to,
                  references=references, closes=True)
    try:
        await sending.submit(runtime, session.identity, sending.Submission(
            chosen.address, [(patient, RcptParams())], build_message(draft)),
            sending.Client(WEB_PROTOCOL, client_host))
    except Refused as exc:
        return exc.reason
    return None


def create_router(web: WebContext) -> APIRouter:
    router = APIRouter()
    store = web.runtime.store

    def professional(chosen: MailboxChoice) -> bool:
        return chosen.type is not MailboxType.PAT

    @router.get("/courrier/{address}/patients")
    async def overview(request: Request, address: str, etat: str = "",
                       page: int = 1) -> Response:
        found = await open_mailbox(web, request, address)
        if isinstance(found, Response):
            return found
        session, choices, chosen = found
        if not professional(chosen):
            return RedirectResponse(f"/courrier/{chosen.address}/conversations",
                                    status_code=303)
        state = STATE_PARAMS.get(etat)
        page = max(1, min(page, 1_000_000))
        opened, closed, threads = await store.care_threads(
            chosen.address, state, (page - 1) * PAGE_SIZE, PAGE_SIZE)
        total = {OPEN: opened, CLOSED: closed}.get(state or "", opened + closed)
        pages = max(1, -(-total // PAGE_SIZE))
        folders = await store.folders.all(chosen.address, viewer=session.identity.login)
        return web.page(request, "patients.html", session=session, mailboxes=choices,
                        current=chosen, folders=[(f, folder_label(f)) for f in folders],
                        threads=[(t, subject_of(t), when(t.last_at)) for t in threads],
                        opened=opened, closed=closed, etat=etat if state else "",
                        page=page, pages=pages, may_write=chosen.writable)

    @router.get("/courrier/{address}/patients/{thread_id}")
    async def conversation(request: Request, address: str, thread_id: int) -> Response:
        found = await open_mailbox(web, request, address)
        if isinstance(found, Response):
            return found
        session, choices, chosen = found
        held = await store.care_thread(chosen.address, thread_id) if professional(chosen) \
            else None
        if held is None:
            return web.page(request, "error.html", session=session, mailboxes=choices,
                            current=chosen, status=404, title="Conversation introuvable",
                            message="Cette conversation n'existe pas dans cette boîte.")
        thread, listed = held
        located = await store.locate_messages(chosen.address, [m.message_id for m in listed])
        shown = []
        for m in listed:
            place = located.get(m.message_id)
            href = (f"/courrier/{chosen.address}/dossiers/{place.folder_id}/messages/"
                    f"{place.uid}" if place is not None else None)
            subject = (place.subject if place is not None and place.subject
                       else subject_of(thread))
            shown.append(ShownMessage(href, subject, when(m.at), m.from_patient,
                                      place is not None and "\\Seen" not in place.flags.split()
                                      and m.from_patient))
        folders = await store.folders.all(chosen.address, viewer=session.identity.login)
        return web.page(request, "patient_thread.html", session=session, mailboxes=choices,
                        current=chosen, folders=[(f, folder_label(f)) for f in folders],
                        thread=thread, subject=subject_of(thread), messages=shown,
                        opened_at=when(thread.opened_at),
                        closed_at=when(thread.closed_at) if thread.closed_at else None,
                        may_write=chosen.writable)

    @router.post("/courrier/{address}/patients/{thread_id}/clore")
    async def close(request: Request, address: str, thread_id: int) -> Response:
        found = await open_mailbox(web, request, address)
        if isinstance(found, Response):
            return found
        session, _, chosen = found
        form = await request.form(max_files=0, max_fields=5)
        back = f"/courrier/{chosen.address}/patients/{thread_id}"
        if not same_token(str(form.get("csrf", "")), session.csrf):
            return RedirectResponse(back, status_code=303)
        held = await store.care_thread(chosen.address, thread_id) if professional(chosen) \
            else None
        if held is None or not chosen.writable:
            return Response("Conversation introuvable ou boîte en lecture seule\n",
                            status_code=403, media_type="text/plain")
        thread, listed = held
        if thread.closed:
            session.notice = "Cette conversation était déjà close."
            return RedirectResponse(back, status_code=303)
        ids = [m.message_id for m in listed if m.message_id != thread.thread]
        references = " ".join([thread.thread, *ids[-(REFERENCES_KEPT - 1):]])
        refused = await close_conversation(
            web, session, chosen, thread.patient, subject_of(thread),
            (ids or [thread.thread])[-1], references,
            request.client.host if request.client else None)
        session.notice = (f"La conversation n'a pas pu être close : {refused}" if refused
                          else "Conversation close.")
        target = str(form.get("retour", ""))
        if target == "liste":
            back = f"/courrier/{chosen.address}/patients"
        return RedirectResponse(back, status_code=303)

    @router.post("/courrier/{address}/dossiers/{folder_id}/messages/{uid}/clore")
    async def close_from_message(request: Request, address: str, folder_id: int,
                                 uid: int) -> Response:
        """The professional closes the patient conversation of this message: a message
        in its thread carrying ``X-MSS-MES: FIN`` (domain/patient.py closes on it)."""
        found = await open_mailbox(web, request, address)
        if isinstance(found, Response):
            return found
        session, _, chosen = found
        form = await request.form(max_files=0, max_fields=5)
        back = f"/courrier/{chosen.address}/dossiers/{folder_id}/messages/{uid}"
        if not same_token(str(form.get("csrf", "")), session.csrf):
            return RedirectResponse(back, status_code=303)
        located = await message_of(web, chosen, folder_id, uid)
        if located is None or not chosen.writable or not professional(chosen):
            return RedirectResponse(back, status_code=303)
        view = render_message(located[1])
        conversation = await patient_conversation(web, session, chosen, view)
        if conversation is None or conversation.patient_side:
            return RedirectResponse(back, status_code=303)
        references = " ".join((*view.references, view.message_id or "")).strip()
        refused = await close_conversation(
            web, session, chosen, conversation.patient, view.full_subject,
            view.message_id or "", references,
            request.client.host if request.client else None)
        session.notice = (f"La conversation n'a pas pu être close : {refused}" if refused
                          else "Conversation close.")
        return RedirectResponse(back, status_code=303)

    return router
