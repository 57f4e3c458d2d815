"""XML from outside, parsed without trusting it: the one parser of XDM metadata and CDA.

Two steps:

1. The prolog is read first by expat (the parser defusedxml guards), stopping at the
   root element's start tag: a document that declares a document type at all
   (``<!DOCTYPE``, the only place an entity can be declared: a billion laughs, an
   external entity, an external parameter entity) is refused there, before libxml2
   sees it. libxml2 loads an external parameter entity of an internal subset even with
   ``load_dtd=False`` and ``resolve_entities=False``: only never showing it one is safe.
2. lxml (libxml2) then builds the tree with the rules of defusedxml: no entity
   substituted (``resolve_entities=False``), no DTD loaded (``load_dtd=False``),
   nothing fetched (``no_network=True``, and a resolver that answers every request
   with nothing), libxml2's limits on text nodes and depth kept (``huge_tree=False``);
   a doctype or an entity reference found in the tree is refused again.

Every refusal names what was refused and why; nothing is ever resolved, so a
refused document has read no file and no URL.
"""

from __future__ import annotations

import xml.parsers.expat
from typing import Any

from lxml import etree

from mssante.errors import DocumentRefused

MAX_XML_SIZE = 20 * 1024 * 1024  # a CDA may embed its PDF (base64) in a nonXMLBody


class _NothingResolved(etree.Resolver):
    """Every external resource libxml2 asks for is empty (step 1 already refused any
    document that could ask)."""

    def resolve(self, system_url: str | None, public_id: str | None,
                context: object) -> Any:
        return self.resolve_string("", context)


def _parser() -> etree.XMLParser:
    # a new parser each time: lxml parsers keep state and are not shared across threads
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             dtd_validation=False, huge_tree=False, collect_ids=False,
                             remove_blank_text=False)
    parser.resolvers.add(_NothingResolved())
    return parser


class _RootReached(Exception):
    pass


class _Doctype(Exception):
    pass


def _refuse_doctype(data: bytes, what: str) -> None:
    """Read the prolog with expat up to the root's start tag; DocumentRefused for a
    document type declaration (or an entity declaration) or a prolog expat cannot read."""
    parser = xml.parsers.expat.ParserCreate()

    def doctype(*_: object) -> None:
        raise _Doctype

    def root(*_: object) -> None:
        raise _RootReached

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    parser.StartElementHandler = root
    try:
        for start in range(0, len(data), 65536):  # the prolog is near the start
            parser.Parse(data[start:start + 65536], False)
        parser.Parse(b"", True)
    except _RootReached:
        return
    except _Doctype:
        raise DocumentRefused([f"{what}: a document type declaration (DTD) is not allowed "
                               "(it could declare entities: XXE, billion laughs)"]) from None
    except xml.parsers.expat.ExpatError as exc:
        raise DocumentRefused([f"{what}: not well-formed XML "
                               f"({xml.parsers.expat.ErrorString(exc.code)}, line "
                               f"{exc.lineno})"]) from None
    except (ValueError, LookupError) as exc:  # an encoding expat does not know
        raise DocumentRefused([f"{what}: not readable as XML ({exc})"]) from None
    raise DocumentRefused([f"{what}: no root element"])


def parse_xml(data: bytes, what: str, *, max_size: int = MAX_XML_SIZE) -> etree._Element:
    """The root element of ``data``; DocumentRefused naming ``what`` for XML that is
    too large, not well formed, or carries a DTD or an entity reference."""
    if len(data) > max_size:
        raise DocumentRefused([f"{what}: {len(data)} octets of XML, more than {max_size}"])
    _refuse_doctype(data, what)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        text = str(exc)
        if "entity" in text.lower():
            raise DocumentRefused([f"{what}: entity declarations or references are not "
                                   f"allowed ({text})"]) from None
        raise DocumentRefused([f"{what}: not well-formed XML ({text})"]) from None
    except ValueError as exc:  # e.g. a text declaration lxml refuses on bytes
        raise DocumentRefused([f"{what}: not readable as XML ({exc})"]) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise DocumentRefused([f"{what}: a document type declaration (DTD) is not allowed "
                               "(it could declare entities: XXE, billion laughs)"])
    for _ in root.iter(etree.Entity):
        raise DocumentRefused([f"{what}: an entity reference is not allowed"])
    return root
