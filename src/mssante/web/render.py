"""A stored message as the webmail shows it: headers, the body to read, the attachments.

``render_message(raw, image_url)`` turns the stored octets into a ``MessageView`` for the
templates; ``attachment_content(raw, part_id)`` gives one part's decoded octets with a
``Content-Disposition`` to send them; ``preview(raw)`` is the short text of a message
list. No I/O, no routes: the web's handlers call these with the octets the store gives.

Implementation notes
--------------------
- The message is hostile input. It is split by ``content.mime``, the splitter IMAP
  answers FETCH with: windows on the one ``bytes`` object (a 25 MB message is not
  copied part by part as ``email``'s parser does), never raising on broken MIME, part
  numbers as IMAP gives them (RFC 9051 §6.4.5), so "2.1" here is BODY[2.1] there. This
  module walks at most ``MAX_DEPTH`` levels and lists at most ``MAX_ATTACHMENTS``
  parts; the view says ``incomplete`` when it stopped. Every function here answers for
  any octets: a view (``render_message``, ``preview``) or ``PartNotFound``.
- The body shown: in multipart/alternative the last HTML alternative (RFC 2046 §5.1.4:
  the last is the richest), else the last text/plain; in multipart/related its root
  (the ``start`` parameter, else the first part, RFC 2387 §3.2); in any other multipart
  the first part that has a body. Other parts are attachments, except the alternatives
  of the body shown and the images its HTML shows by ``cid:``. At most ``MAX_BODY``
  octets of the body are decoded, and of HTML at most ``MAX_TAGS`` start tags are kept
  (the sanitiser's parser is quadratic in the nesting depth); ``Body.truncated`` says
  when the rest is left out, ``Body.part_id`` names the part to download whole.
- HTML goes through nh3 (ammonia) with an allowlist made for mail: no script, style,
  iframe, form, object, svg or math (dropped with their content), no event handler, no
  ``style``, ``class`` or ``id`` attribute: the page's Content-Security-Policy forbids
  inline style, a class or id could dress the message as the webmail's own interface.
  Presentational attributes that mail layouts use (``width``, ``align``, ``bgcolor``,
  ``border``...) stay: they are no style and load nothing. Links keep http, https and
  mailto URLs only, get ``target="_blank"`` and ``rel="noopener noreferrer nofollow"``;
  relative URLs are removed (they would point into the webmail).
- No remote resource at all: ``img src`` keeps only a ``cid:`` URL naming an image part
  of this message (RFC 2392), rewritten to the URL the web gives (``image_url``); any
  other source is removed, and with it every ``data:`` image: not remote, but a
  message could inline 25 MB into the page it is read in, an SVG one is a document of
  its own, and the page's CSP can then stay ``img-src 'self'``. ``remote_content_blocked``
  says that the message asked for outside resources (an image, a style sheet, a CSS
  ``url()``, a background), so the page can tell the reader why something is missing.
- text/plain is escaped, and http and https URLs in it become links built here (the
  URL escaped into the ``href``), with the same ``target`` and ``rel``.
- Header values are decoded (RFC 2047 words, RFC 6532 raw UTF-8, else Latin-1), their
  control characters made spaces; address fields are read by ``domain.addresses``, the
  parser the sending rules use. The subject's ``XDM/1.0/DDM+`` prefix (MSSanté: a
  message carrying an IHE XDM archive) is hidden in ``subject`` and kept in
  ``full_subject``.
- File names come from Content-Disposition ``filename``, else Content-Type ``name``,
  RFC 2231 continuations and charsets joined and decoded, RFC 2047 words decoded
  (written by many clients though RFC 2047 §5 forbids them there), then made safe to
  save: no path separator, no control or format character (bidirectional overrides
  included), no leading dot, no name Windows reserves, at most 255 UTF-8 octets with
  the extension kept. ``content_disposition`` writes RFC 6266 with an ASCII ``filename``
  and an RFC 8187 ``filename*``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import html
import mimetypes
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import nh3

from mssante.content.ascii import to_ascii
from mssante.content.mime import (
    DECODABLE,
    IDENTITY_ENCODINGS,
    LEAF,
    MESSAGE,
    MULTIPART,
    Entity,
    UnknownEncoding,
    address_text,
    charset_decode,
    decode_transfer,
    decode_words,
    decoded_size,
    header_text,
    parameters,
    part,
)
from mssante.domain.addresses import AddressSyntaxError, mailboxes, parse_address_list

MAX_DEPTH = 20  # multipart levels walked; deeper parts are neither shown nor listed
MAX_ATTACHMENTS = 500  # parts listed
MAX_BODY = 2 * 1024 * 1024  # encoded octets of the body decoded and shown
MAX_TAGS = 10_000  # start tags of an HTML body given to the sanitiser; the rest is cut
MAX_HEADER_TEXT = 2000  # characters of a header value shown
MAX_REFERENCES = 100  # message ids of References kept (the last ones)
MAX_FILENAME = 255  # UTF-8 octets of a file name (most file systems)
PREVIEW_LENGTH = 200  # characters of a preview
PREVIEW_WINDOW = 16 * 1024  # encoded octets of text read for a preview (HTML: 4 times)

# Images a browser shows without running anything: SVG is a document with scripts.
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
XDM_ARCHIVE = "IHE_XDM.ZIP"  # MSSanté: the archive clinical documents travel in
LINK_REL = "noopener noreferrer nofollow"


class PartNotFound(LookupError):
    """No part of the message has this part number, or it names a multipart."""


# --- the view -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShownMailbox:
    name: str | None  # display name, decoded
    address: str  # addr-spec (RFC 5322 §3.4.1)


@dataclass(frozen=True, slots=True)
class AddressField:
    text: str  # as a person reads it; the decoded field when it does not parse
    mailboxes: tuple[ShownMailbox, ...]  # group members in place; empty when unparseable


@dataclass(frozen=True, slots=True)
class Attachment:
    part_id: str  # IMAP part number, "2" or "2.1" (RFC 9051 §6.4.5)
    filename: str  # decoded and safe to save; "part-2.1.pdf" when the message names none
    content_type: str  # "application/pdf": type/subtype, lower case, tokens only
    size: int  # decoded octets
    content_id: str | None  # without its angle brackets

    @property
    def inline_image(self) -> bool:
        """An image a page may show from its own origin (``INLINE_IMAGE_TYPES``)."""
        return self.content_type in INLINE_IMAGE_TYPES

    @property
    def is_xdm(self) -> bool:
        """The IHE XDM archive of an MSSanté clinical document."""
        return self.filename.upper() == XDM_ARCHIVE


@dataclass(frozen=True, slots=True)
class Body:
    kind: Literal["html", "text", "none"]
    html: str  # a safe HTML fragment (sanitised, or escaped text): insert it unescaped
    part_id: str | None  # the part shown, None without body
    truncated: bool  # only the first MAX_BODY octets are shown

    def __html__(self) -> str:
        """Jinja2 (markupsafe) inserts the body as it is: ``{{ view.body }}``."""
        return self.html


@dataclass(frozen=True, slots=True)
class MessageView:
    subject: str  # decoded, the XDM prefix hidden
    full_subject: str  # decoded, as written
    is_xdm: bool  # the subject carries the XDM/1.0/DDM+ prefix
    from_: AddressField | None
    reply_to: AddressField | None
    to: AddressField | None
    cc: AddressField | None
    date: dt.datetime | None  # None when absent or unreadable
    date_text: str | None  # the Date field as written
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]  # msg-ids with angle brackets, oldest first
    read_receipt_to: AddressField | None  # Disposition-Notification-To (RFC 8098 §2.1)
    x_mss_mes: str | None  # MSSanté: "FIN" closes a patient conversation
    body: Body
    attachments: tuple[Attachment, ...]
    remote_content_blocked: bool
    incomplete: bool  # too deep or too many parts: some are neither shown nor listed

    @property
    def read_receipt_requested(self) -> bool:
        return self.read_receipt_to is not None


@dataclass(frozen=True, slots=True)
class AttachmentContent:
    attachment: Attachment
    data: bytes  # decoded (base64, quoted-printable); as stored for an unknown encoding

    @property
    def content_disposition(self) -> str:
        """``attachment`` with the file name; ``inline`` for an image a page shows."""
        return content_disposition(self.attachment.filename,
                                   inline=self.attachment.inline_image)


# --- headers ----------------------------------------------------------------------------

_CONTROLS = re.compile(r"[\x00-\x1f\x7f]+")
_MSG_ID = re.compile(r"<[^<>\s]{1,998}>")
_XDM_PREFIX = re.compile(r"((?:\s*(?:re|fwd?|tr)\s*:)*\s*)XDM/1\.0/DDM\+", re.I)


def _shown(text: str) -> str:
    text = _CONTROLS.sub(" ", text).strip()
    return text if len(text) <= MAX_HEADER_TEXT else text[:MAX_HEADER_TEXT] + "…"


def _header(entity: Entity, name: str) -> str | None:
    values = entity.values(name)
    return _shown(header_text(values[0])) if values else None


def _address_field(entity: Entity, name: str) -> AddressField | None:
    values = entity.values(name)
    if not values:
        return None
    value = values[0]
    text = _shown(address_text(value))
    try:
        text_value = value.decode("utf-8")
    except UnicodeDecodeError:
        text_value = value.decode("latin-1")  # as address_text reads it
    try:
        items = parse_address_list(text_value)
    except AddressSyntaxError:
        return AddressField(text, ())
    shown = tuple(ShownMailbox(_shown(decode_words(m.display_name)) if m.display_name else None,
                               _shown(m.addr_spec)) for m in mailboxes(items))
    return AddressField(text, shown)


def _date(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return email.utils.parsedate_to_datetime(text)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None


def hide_xdm_prefix(subject: str) -> str:
    """The subject without its ``XDM/1.0/DDM+`` prefix (MSSanté: clients hide it), a
    ``Re:`` or ``Tr:`` before it kept."""
    return _XDM_PREFIX.sub(r"\1", subject, count=1) if _XDM_PREFIX.match(subject) else subject


# --- structure -----------------------------------------------------------------------------


def _id(path: tuple[int, ...]) -> str:
    return ".".join(str(n) for n in path)


def _kids(entity: Entity, path: tuple[int, ...]) -> Iterator[tuple[Entity, tuple[int, ...]]]:
    for number, child in enumerate(entity.children, 1):
        yield child, (*path, number)


def _disposition(entity: Entity) -> tuple[str, list[tuple[str, str]]]:
    value = entity.get("content-disposition")
    if value is None:
        return "", []
    head, _, rest = value.partition(";")
    return head.strip().lower(), parameters(rest)


_CONTINUATION = re.compile(r"(.+)\*([0-9]{1,3})(\*?)")  # RFC 2231 §3, §4.1: name*0*


def _rfc2231(params: list[tuple[str, str]], name: str) -> str | None:
    """Parameter ``name`` with RFC 2231 continuations joined and its charset decoded."""
    plain: str | None = None
    pieces: dict[int, tuple[str, bool]] = {}
    for key, value in params:
        if key == name:
            plain = value if plain is None else plain
        elif key == name + "*":  # RFC 2231 §4: one piece, with charset
            pieces.setdefault(0, (value, True))
        elif (match := _CONTINUATION.fullmatch(key)) and match.group(1) == name:
            pieces.setdefault(int(match.group(2)), (value, bool(match.group(3))))
    if not pieces:
        return None if plain is None else header_text(plain.encode("utf-8", "surrogateescape"))
    charset = ""
    octets = bytearray()
    for index in range(len(pieces)):
        if index not in pieces:
            break
        value, encoded = pieces[index]
        data = value.encode("utf-8", "surrogateescape")
        if encoded:
            if index == 0 and data.count(b"'") >= 2:  # charset'language'value
                head, _, _lang = data.partition(b"'")
                charset = head.decode("ascii", "replace")
                data = data.split(b"'", 2)[2]
            data = urllib.parse.unquote_to_bytes(data)
        octets += data
    if charset:
        return charset_decode(bytes(octets), charset)
    return header_text(bytes(octets))


def _declared_filename(entity: Entity) -> str | None:
    _, params = _disposition(entity)
    name = _rfc2231(params, "filename") or _rfc2231(entity.content_type[2], "name")
    return decode_words(name) if name else None


def _is_attachment(entity: Entity) -> bool:
    disposition, _ = _disposition(entity)
    return disposition == "attachment" or _declared_filename(entity) is not None


def _mime_type(entity: Entity) -> str:
    if entity.kind == MESSAGE:
        return "message/rfc822"
    mtype, subtype, _ = entity.content_type
    return f"{mtype}/{subtype}"


def _content_id(entity: Entity) -> str | None:
    value = entity.get("content-id")
    if value is None:
        return None
    value = header_text(value.encode("utf-8", "surrogateescape")).strip()
    return value.strip("<>").strip() or None


@dataclass(slots=True)
class _Chosen:
    entity: Entity
    path: tuple[int, ...]
    alternatives: tuple[int, ...] | None  # the multipart/alternative it was chosen in


def _choose(entity: Entity, path: tuple[int, ...], depth: int,
            prefer: str) -> _Chosen | None:
    """The part to read (see the notes); ``prefer`` "html" or "plain" in alternatives."""
    if depth > MAX_DEPTH:
        return None
    kind = entity.kind
    if kind == LEAF:
        mtype, subtype, _ = entity.content_type
        if mtype == "text" and subtype in ("html", "plain") and not _is_attachment(entity):
            return _Chosen(entity, path or (1,), None)
        return None
    if kind != MULTIPART:
        return None
    subtype = entity.content_type[1]
    if subtype == "alternative":
        found = [c for child, p in _kids(entity, path)
                 if (c := _choose(child, p, depth + 1, prefer)) is not None]
        if not found:
            return None
        best = [c for c in found if c.entity.content_type[1] == prefer] or found
        chosen = best[-1]
        return _Chosen(chosen.entity, chosen.path, chosen.alternatives or path)
    if subtype == "related":
        start = next((v for k, v in entity.content_type[2] if k == "start"), "").strip("<> ")
        kids = list(_kids(entity, path))
        child, p = next(((c, p) for c, p in kids if start and _content_id(c) == start), kids[0])
        return _choose(child, p, depth + 1, prefer)
    for child, p in _kids(entity, path):
        chosen_part = _choose(child, p, depth + 1, prefer)
        if chosen_part is not None:
            return chosen_part
    return None


def _leaves(root: Entity) -> tuple[list[tuple[Entity, tuple[int, ...]]], bool]:
    """Every part that is not a multipart, with its number, up to the limits; and whether
    the walk stopped at one. An encapsulated message is one part (not walked into)."""
    out: list[tuple[Entity, tuple[int, ...]]] = []
    cut = False
    stack: list[tuple[Entity, tuple[int, ...], int]] = [(root, (), 0)]
    while stack:
        entity, path, depth = stack.pop()
        if entity.kind != MULTIPART:
            out.append((entity, path or (1,)))
            continue
        if depth >= MAX_DEPTH:
            cut = True
            continue
        kids = list(_kids(entity, path))
        room = max(0, 2 * MAX_ATTACHMENTS - len(out) - len(stack))
        if len(kids) > room:
            cut = True
            kids = kids[:room]
        stack.extend((child, p, depth + 1) for child, p in reversed(kids))
    return out, cut


def _attachment(entity: Entity, path: tuple[int, ...]) -> Attachment:
    part_id = _id(path)
    content_type = _mime_type(entity)
    name = sanitise_filename(_declared_filename(entity) or "")
    if not name:
        extension = ".eml" if content_type == "message/rfc822" else (
            mimetypes.guess_extension(content_type) or "")
        name = f"part-{part_id}{extension}"
    encoding = entity.encoding
    if entity.kind == MESSAGE or encoding not in IDENTITY_ENCODINGS | DECODABLE:
        size = entity.body_size
    else:
        size = decoded_size(entity.body, encoding)
    return Attachment(part_id, name, content_type, size, _content_id(entity))


# --- bodies --------------------------------------------------------------------------------


def _text(entity: Entity, limit: int) -> tuple[str, bool]:
    """The first ``limit`` encoded octets of a text part, decoded; and whether cut."""
    end = min(entity.end, entity.body_start + limit)
    data = entity.raw[entity.body_start:end]
    encoding = entity.encoding
    if encoding not in IDENTITY_ENCODINGS and encoding not in DECODABLE:
        encoding = "binary"
    charset = next((v for k, v in entity.content_type[2] if k == "charset"), "").strip()
    if charset.lower() in ("", "us-ascii", "ascii"):
        charset = "utf-8"  # 8-bit text labelled by default is UTF-8 far more often
    return charset_decode(decode_transfer(data, encoding), charset), end < entity.end


_TAGS = frozenset({
    "a", "abbr", "b", "bdi", "bdo", "blockquote", "br", "caption", "center", "cite",
    "code", "col", "colgroup", "dd", "del", "dfn", "div", "dl", "dt", "em", "figcaption",
    "figure", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd",
    "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strike", "strong",
    "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul",
    "var", "wbr",
})
# removed with their content, not only the tag
_DROPPED = frozenset({
    "script", "style", "title", "template", "noscript", "iframe", "frame", "frameset",
    "object", "embed", "applet", "svg", "math", "textarea", "select", "button", "xmp",
    "noembed", "noframes", "head",
})
_CELL = {"width", "height", "align", "valign", "bgcolor", "colspan", "rowspan", "nowrap"}
_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"title", "lang", "dir"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height", "align", "border"},
    "table": {"width", "height", "align", "bgcolor", "border", "cellpadding", "cellspacing",
              "summary"},
    "td": _CELL, "th": _CELL | {"scope"},
    "tr": {"align", "valign", "bgcolor", "height"},
    "thead": {"align", "valign"}, "tbody": {"align", "valign"}, "tfoot": {"align", "valign"},
    "col": {"span", "width", "align", "valign"}, "colgroup": {"span", "width", "align", "valign"},
    "font": {"color", "size", "face"},
    "ol": {"start", "type"}, "ul": {"type"}, "li": {"value", "type"},
    "p": {"align"}, "div": {"align"}, "hr": {"width", "size", "align"},
    "h1": {"align"}, "h2": {"align"}, "h3": {"align"}, "h4": {"align"}, "h5": {"align"},
    "h6": {"align"},
}
_URL_SCHEMES = frozenset({"http", "https", "mailto", "cid"})  # cid: rewritten below
# the message asks for something outside: in a tag other than a link, or in CSS
# (one optional white space run on each side of a quote: two adjacent ``\s*`` would
# backtrack quadratically on a long run of spaces)
_REMOTE = re.compile(
    r"""<(?!a[\s>/])[a-z][^<>]*?\b(?:src|srcset|background|poster|href|data|lowsrc)\s*=\s*"""
    r"""(?:["']\s*)?(?:https?:)?//|url\s*\(\s*(?:["']\s*)?(?:https?:)?//|@import""", re.I)


@dataclass(slots=True)
class _Seen:
    remote: bool = False  # an image from outside was removed
    cids: set[str] = field(default_factory=set)  # content ids of the images shown


_START_TAG = re.compile(r"<[A-Za-z]")  # every start tag an HTML parser sees begins so


def _cap_tags(text: str) -> tuple[str, bool]:
    """``text`` cut before its ``MAX_TAGS + 1``-th start tag; and whether cut. The HTML
    parser under nh3 (html5ever) takes time in the depth of open elements for each new
    one: 50,000 nested ``<div>`` (250 KB) take 15 s, 2 MB of them a quarter of an
    hour. No more start tags than MAX_TAGS bounds the depth and so the time."""
    for count, match in enumerate(_START_TAG.finditer(text)):
        if count == MAX_TAGS:
            return text[:match.start()], True
    return text, False


def _sanitise(text: str, images: dict[str, str], seen: _Seen) -> str:
    """``text`` through nh3; ``images`` maps a content id to the URL showing its part.
    Relative URLs are removed (they would point into the webmail) but those of
    ``images``, which nh3 checks after ``attribute`` rewrote them."""
    shown = frozenset(images.values())

    def attribute(tag: str, name: str, value: str) -> str | None:
        if tag == "img" and name == "src":
            if value[:4].lower() == "cid:":
                cid = urllib.parse.unquote(value[4:]).strip("<> ")
                if cid in images:
                    seen.cids.add(cid)
                return images.get(cid)
            seen.remote = seen.remote or _OUTSIDE.match(value) is not None
            return None
        if name == "href" and value[:4].lower() == "cid:":
            return None
        return value

    return nh3.clean(
        text, tags=set(_TAGS), clean_content_tags=set(_DROPPED), attributes=_ATTRIBUTES,
        url_schemes=set(_URL_SCHEMES), attribute_filter=attribute,
        url_relative=lambda url: url if url in shown else None,  # after attribute()
        link_rel=LINK_REL, set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True)


_OUTSIDE = re.compile(r"\s*(?:https?:)?//", re.I)
_URL = re.compile(r"\bhttps?://[^\s<>\"'\x00-\x1f\x7f]+", re.I)


def linkify(text: str) -> str:
    """Plain text as HTML: escaped, http and https URLs made links (``LINK_REL``)."""
    out: list[str] = []
    position = 0
    for match in _URL.finditer(text):
        url = match.group().rstrip(".,;:!?'")
        if url.endswith(")") and "(" not in url:
            url = url[:-1]
        end = match.start() + len(url)
        out.append(html.escape(text[position:match.start()], quote=False))
        out.append(f'<a href="{html.escape(url)}" target="_blank" rel="{LINK_REL}">'
                   f"{html.escape(url, quote=False)}</a>")
        position = end
    out.append(html.escape(text[position:], quote=False))
    return "".join(out)


# --- public functions ------------------------------------------------------------------------


def render_message(raw: bytes, image_url: Callable[[str], str] | None = None) -> MessageView:
    """The view of a stored message. ``image_url(part_id)`` is the URL at which the web
    serves an image part (``attachment_content``); without it no image is shown."""
    root = Entity(raw, 0, len(raw))
    leaves, incomplete = _leaves(root)
    by_cid: dict[str, tuple[Entity, tuple[int, ...]]] = {}
    for entity, path in leaves:
        cid = _content_id(entity)
        if cid is not None and cid not in by_cid:
            by_cid[cid] = (entity, path)
    chosen = _choose(root, (), 0, "html")
    seen = _Seen()
    used: set[tuple[int, ...]] = set()
    if chosen is None:
        body = Body("none", "", None, False)
    else:
        text, truncated = _text(chosen.entity, MAX_BODY)
        if chosen.entity.content_type[1] == "html":
            images = {}
            if image_url is not None:
                images = {cid: image_url(_id(path)) for cid, (entity, path) in by_cid.items()
                          if _mime_type(entity) in INLINE_IMAGE_TYPES}
            text, cut = _cap_tags(text)
            truncated = truncated or cut
            shown = _sanitise(text, images, seen)
            seen.remote = seen.remote or _REMOTE.search(text) is not None
            used = {by_cid[cid][1] for cid in seen.cids}
            body = Body("html", shown, _id(chosen.path), truncated)
        else:
            body = Body("text", linkify(text), _id(chosen.path), truncated)
        used.add(chosen.path)
    alternatives = chosen.alternatives if chosen is not None else None
    attachments: list[Attachment] = []
    for entity, path in leaves:
        if path in used or (alternatives is not None and path[:len(alternatives)]
                            == alternatives and entity.content_type[0] == "text"
                            and not _is_attachment(entity)):
            continue
        if len(attachments) == MAX_ATTACHMENTS:
            incomplete = True
            break
        attachments.append(_attachment(entity, path))
    full_subject = _header(root, "subject") or ""
    subject = hide_xdm_prefix(full_subject)
    date_text = _header(root, "date")
    references = tuple(_MSG_ID.findall(_header(root, "references") or ""))
    return MessageView(
        subject=subject, full_subject=full_subject, is_xdm=subject != full_subject,
        from_=_address_field(root, "from"), reply_to=_address_field(root, "reply-to"),
        to=_address_field(root, "to"), cc=_address_field(root, "cc"),
        date=_date(date_text), date_text=date_text,
        message_id=_header(root, "message-id"), in_reply_to=_header(root, "in-reply-to"),
        references=references[-MAX_REFERENCES:],
        read_receipt_to=_address_field(root, "disposition-notification-to"),
        x_mss_mes=_header(root, "x-mss-mes"),
        body=body, attachments=tuple(attachments), remote_content_blocked=seen.remote,
        incomplete=incomplete)


_PART_ID = re.compile(r"[1-9][0-9]{0,5}(?:\.[1-9][0-9]{0,5}){0,63}")


def attachment_content(raw: bytes, part_id: str) -> AttachmentContent:
    """One part's decoded octets by its number ("2.1"); PartNotFound when there is no
    such part or it is a multipart. An encapsulated message is given whole (``.eml``)."""
    if not _PART_ID.fullmatch(part_id):
        raise PartNotFound(f"no part {part_id!r}")
    path = tuple(int(n) for n in part_id.split("."))
    entity = part(Entity(raw, 0, len(raw)), path)
    if entity is None or entity.kind == MULTIPART:
        raise PartNotFound(f"no part {part_id!r}")
    attachment = _attachment(entity, path)
    encoding = entity.encoding
    try:
        data = decode_transfer(entity.body, "binary" if entity.kind == MESSAGE else encoding)
    except UnknownEncoding:
        data = entity.body
    return AttachmentContent(attachment, data)


_RESERVED_CHARACTERS = re.compile(r'[\\/:*?"<>|]')
_WINDOWS_DEVICES = re.compile(r"(?:con|prn|aux|nul|com[0-9]|lpt[0-9])(?:\..*)?", re.I | re.S)


def sanitise_filename(name: str) -> str:
    """A file name safe to save anywhere; "" when nothing of it is left."""
    if len(name) > 8 * MAX_FILENAME:  # the end kept: it holds the extension
        name = name[:7 * MAX_FILENAME] + name[-MAX_FILENAME:]
    name = unicodedata.normalize("NFC", name)
    name = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp")
                   else "" if unicodedata.category(c) in ("Cf", "Cs") else c for c in name)
    name = _RESERVED_CHARACTERS.sub("_", name)
    name = " ".join(name.split()).strip(" .")
    if _WINDOWS_DEVICES.fullmatch(name):
        name = "_" + name
    if len(name.encode()) > MAX_FILENAME:
        stem, dot, extension = name.rpartition(".")
        if not dot or len(extension) > 16:
            stem, dot, extension = name, "", ""
        room = MAX_FILENAME - len(extension.encode()) - len(dot)
        stem = stem.encode()[:room].decode("utf-8", "ignore").rstrip(" .")
        name = stem + dot + extension
    return name


_ATTR_CHAR = "!#$&+-.^_`|~"  # RFC 8187 §3.2.1 attr-char, besides ALPHA and DIGIT


def content_disposition(filename: str, *, inline: bool = False) -> str:
    """A Content-Disposition value for sending a part (RFC 6266 §4): ``attachment`` (or
    ``inline``), an ASCII ``filename`` and, for any other name, ``filename*`` in UTF-8."""
    name = sanitise_filename(filename) or "download"
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_"
                       for c in to_ascii(name))
    value = f'{"inline" if inline else "attachment"}; filename="{fallback}"'
    if fallback != name:
        value += "; filename*=UTF-8''" + urllib.parse.quote(name, safe=_ATTR_CHAR)
    return value


_WHITE = re.compile(r"\s+")


def preview(raw: bytes, length: int = PREVIEW_LENGTH) -> str:
    """The first ``length`` characters of the message's text, white space collapsed,
    for a message list; reads the first octets of one text part only."""
    root = Entity(raw, 0, len(raw))
    chosen = _choose(root, (), 0, "plain")
    if chosen is None:
        return ""
    if chosen.entity.content_type[1] == "html":
        text, _ = _text(chosen.entity, 4 * PREVIEW_WINDOW)
        text = html.unescape(nh3.clean(text, tags=set(), clean_content_tags=set(_DROPPED)))
    else:
        text, _ = _text(chosen.entity, PREVIEW_WINDOW)
    text = _WHITE.sub(" ", _CONTROLS.sub(" ", text)).strip()
    if len(text) <= length:
        return text
    cut = text[:length]
    space = cut.rfind(" ")
    return (cut[:space] if space > length // 2 else cut).rstrip() + "…"


def local_time(ts: float | None) -> str:
    """An epoch time as the web shows dates: local time, to the minute ("" for none)."""
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).astimezone().strftime("%d/%m/%Y %H:%M")
