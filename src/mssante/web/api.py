"""The REST path for clinical documents, for hospital software and for the web:
``POST /api/v1/mailboxes/{address}/documents``.

The request is ``multipart/form-data``: ``to`` (repeatable, each one or more addresses
separated by commas), ``cc`` (optional, likewise), ``subject`` (optional: the label of
the ``XDM/1.0/DDM+`` subject), ``body`` (optional text), ``cda`` (repeatable file, a
CDA R2 document) and ``pdf`` (repeatable file, a rendering, paired with the CDA of its
file name stem, else in order). The message is content/docmessage.py's
``documents_message``, as ``mssante send`` and the webmail build it, submitted through
operator/sending.py: the same rules, Sent copy and queue as submission.

Who calls:
- ``Authorization: Bearer <PSC access token>``: checked as IMAP and submission check
  XOAUTH2 (auth/psctoken.py ``token_login``: signature, issuer, audience, ``acr``,
  a PSC session not ended, the professional's account here);
- else the browser's web session (sessions.py), with its CSRF token (the ``csrf``
  field or the ``X-CSRF-Token`` header) as every form of the webmail; a cross-site
  post is refused before any route by security.py.

Answers are JSON: ``201 {"message_id", "recipients", "documents": [{"name", "sha1",
"size"}]}``; ``400 {"error", "reasons"}`` for refused addresses or documents (every
reason found, nothing sent); ``401`` without valid credentials (RFC 6750 §3
``WWW-Authenticate: Bearer``); ``403`` for a mailbox the caller may not send as;
``413`` past the operator's message size; ``503`` when the identity provider cannot be
reached.

Implementation notes: a refused token is recorded in the audit trail as a failed
login, as at IMAP and submission; who may send as which mailbox is asked of
``sending.check_sender`` (domain.policy, the rights read now); each recipient of
``sending.check_recipient`` before the documents are built; the archive is built and
checked in a thread (CPU-bound).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from mssante.audit.events import LOGIN_FAILED, AuditEvent, clip
from mssante.auth.identity import Identity
from mssante.auth.psctoken import ProviderUnavailable, TokenLoginFailed, token_login
from mssante.content.docmessage import DEFAULT_TEXT, NamedFile, documents_message
from mssante.errors import DocumentRefused, InvalidAddress, PolicyViolation
from mssante.operator import sending
from mssante.operator.accept import RcptParams
from mssante.operator.refusals import MessageTooBig, Refused, SenderNotAllowed
from mssante.web.compose import MAX_FIELD, split_addresses
from mssante.web.context import WEB_PROTOCOL, WebContext
from mssante.web.sessions import current, same_token

PATH = "/api/v1/mailboxes/{address}/documents"
MAX_FILES = 40  # cda and pdf files of one request
MAX_FIELDS = 2 * 100 + 10  # to and cc values, subject, body, csrf
MAX_BODY = 1024 * 1024  # characters of the text
CSRF_HEADER = "x-csrf-token"
REALM = 'Bearer realm="mssante"'  # RFC 6750 §3


def _error(status: int, error: str, reasons: Sequence[str] = (),
           headers: dict[str, str] | None = None) -> JSONResponse:
    content: dict[str, object] = {"error": error}
    if reasons:
        content["reasons"] = list(reasons)
    return JSONResponse(content, status_code=status,
                        headers={"Cache-Control": "no-store", **(headers or {})})


def _bearer(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (RFC 6750 §2.1); "" for another
    scheme or an empty one; None without the header."""
    value = request.headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _peer(request: Request) -> str:
    return request.client.host if request.client else ""


def create_router(web: WebContext) -> APIRouter:
    router = APIRouter()
    runtime = web.runtime

    async def caller(request: Request) -> Identity | JSONResponse:
        """The identity the request authenticates as: its bearer token's, else its web
        session's; or the answer (401, 503)."""
        token = _bearer(request)
        if token is not None:
            tokens = runtime.tokens
            if tokens is None or not token:
                return _error(401, "a Pro Santé Connect access token is expected",
                              headers={"WWW-Authenticate": REALM})
            try:
                return await token_login(tokens, runtime.store, token, "")
            except ProviderUnavailable as exc:
                return _error(503, str(exc))
            except TokenLoginFailed as exc:
                await runtime.store.audit_record([AuditEvent(
                    LOGIN_FAILED, "?", source=f"HTTPS {_peer(request)}",
                    detail=clip(f"bearer token at {request.url.path}: {exc}"))])
                return _error(401, str(exc), headers={
                    "WWW-Authenticate": f'{REALM}, error="invalid_token"'})
        session = current(request)
        if session is None:
            return _error(401, "authentication required: a web session or a Pro Santé "
                               "Connect access token", headers={"WWW-Authenticate": REALM})
        return session.identity

    @router.post(PATH)
    async def send_documents(request: Request, address: str) -> Response:
        identity = await caller(request)
        if isinstance(identity, Response):
            return identity
        try:
            await sending.check_sender(runtime, identity, address)
        except Refused as exc:
            return _error(403, f"{address}: this mailbox is not one you may send as",
                          [exc.reason])
        limit = runtime.settings.max_message_size
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit * 4 // 3 + 1024 * 1024:
            return _error(413, f"the request is larger than messages may be ({limit} octets)")
        try:
            form = await request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS)
        except HTTPException as exc:  # starlette's answer to a malformed multipart body
            return _error(400, f"not a readable multipart/form-data request: {exc.detail}")
        try:
            return await _send(request, identity, address.lower(), form)
        finally:
            await form.close()

    async def _send(request: Request, identity: Identity, sender: str,
                    form: FormData) -> Response:
        session = current(request)
        if request.headers.get("authorization") is None:
            token = str(form.get("csrf") or request.headers.get(CSRF_HEADER, ""))
            if session is None or not same_token(token, session.csrf):
                return _error(403, "the web session's CSRF token is missing or wrong "
                                   "(the csrf field or the X-CSRF-Token header)")
        reasons: list[str] = []
        to: list[str] = []
        cc: list[str] = []
        for name, found in (("to", to), ("cc", cc)):
            for value in form.getlist(name):
                if not isinstance(value, str):
                    reasons.append(f"{name}: a file where an address was expected")
                    continue
                try:
                    found.extend(split_addresses(value))
                except InvalidAddress as exc:
                    reasons.append(f"{name}: {exc}")
        if reasons:
            return _error(400, "addresses refused", reasons)
        recipients = list(dict.fromkeys((*to, *cc)))
        if not to:
            return _error(400, "at least one recipient (to) is needed")
        limit = runtime.settings.max_message_size
        files: dict[str, list[NamedFile]] = {"cda": [], "pdf": []}
        total = 0
        for name, named in files.items():
            for upload in form.getlist(name):
                if not isinstance(upload, UploadFile):
                    return _error(400, f"{name}: a file is expected, not a text field")
                if not upload.filename:  # a browser's file input left empty
                    continue
                data = await upload.read(limit + 1)
                total += len(data)
                if total > limit:
                    return _error(413, f"the documents are larger than a message may be "
                                       f"({limit} octets)")
                named.append(NamedFile(upload.filename[:255], data))
        if not files["cda"]:
            return _error(400, "at least one CDA document (cda) is needed")
        for accepted, recipient in enumerate(recipients):
            try:
                await sending.check_recipient(runtime, identity, sender, recipient,
                                              accepted=accepted)
            except Refused as exc:
                reasons.append(f"{exc.address or recipient}: {exc.reason}")
        if reasons:
            return _error(400, "recipients refused", reasons)
        subject = form.get("subject")
        body = form.get("body")
        label = subject.strip()[:MAX_FIELD] if isinstance(subject, str) else ""
        text = body[:MAX_BODY] if isinstance(body, str) and body.strip() else DEFAULT_TEXT
        try:
            built = await asyncio.to_thread(
                documents_message, files["cda"], files["pdf"], sender=sender, to=to, cc=cc,
                text=text, label=label or None)
        except DocumentRefused as exc:
            return _error(400, "documents refused", exc.reasons)
        except (PolicyViolation, ValueError) as exc:
            return _error(400, "documents refused", [str(exc)])
        submission = sending.Submission(sender, [(r, RcptParams()) for r in recipients],
                                        built.raw)
        client = sending.Client(WEB_PROTOCOL, _peer(request) or None)
        try:
            await sending.submit(runtime, identity, submission, client)
        except MessageTooBig as exc:
            return _error(413, exc.reason)
        except SenderNotAllowed as exc:
            return _error(403, f"{sender}: this mailbox is not one you may send as",
                          [exc.reason])
        except Refused as exc:
            where = f"{exc.address}: " if exc.address else ""
            return _error(400, "message refused", [f"{where}{exc.reason}"])
        return JSONResponse({"message_id": built.message_id, "recipients": recipients,
                             "documents": [d.as_json() for d in built.documents]},
                            status_code=201, headers={"Cache-Control": "no-store"})

    return router
