"""Target ``address``: the address parsers of domain/addresses.py.

The octets are read as a header value is (UTF-8, undecodable octets kept as surrogate
escapes, as content/mime.py's ``Entity.get`` gives them) and handed to ``parse_address``
(the strict RFC 5321 mailbox of the trust space), ``parse_address_list`` and
``parse_one_mailbox`` (RFC 5322 §3.4).

Oracles:
- the only exception is ``InvalidAddress`` (``AddressSyntaxError`` for the header
  parser), whatever the text;
- an ``Address`` written back (``str``) parses to the same ``Address``, within the
  RFC 5321 §4.5.3.1 lengths, and the header parser reads the same local part and domain
  in it: the two parsers agree on every address the strict one accepts;
- an address list written back with quoted display names, quoted local parts where a
  dot-atom cannot hold them, routes and groups parses to the same list;
- a mailbox's ``address()`` either fails with ``InvalidAddress`` or names the same
  mailbox; ``readable`` and ``mailboxes`` never fail on a parsed list.
"""

from __future__ import annotations

from fuzz.oracles import expect
from mssante.content.mime import decode_words
from mssante.domain.addresses import (
    MAX_DOMAIN,
    MAX_LOCAL_PART,
    MAX_PATH,
    Address,
    AddressSyntaxError,
    Group,
    Mailbox,
    mailboxes,
    parse_address,
    parse_address_list,
    parse_one_mailbox,
    readable,
)
from mssante.errors import InvalidAddress

MAX_LEN = 4096


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mailbox_text(mailbox: Mailbox) -> str:
    spec = mailbox.addr_spec
    if mailbox.route is not None:
        spec = f"{mailbox.route}:{spec}"
    if mailbox.display_name is None and mailbox.route is None:
        return spec
    name = "" if mailbox.display_name is None else _quoted(mailbox.display_name) + " "
    return f"{name}<{spec}>"


def format_list(items: tuple[Mailbox | Group, ...]) -> str:
    """An address list as RFC 5322 §3.4 writes it, display names always quoted."""
    return ", ".join(
        f"{_quoted(item.display_name)}: {', '.join(_mailbox_text(m) for m in item.mailboxes)};"
        if isinstance(item, Group) else _mailbox_text(item) for item in items)


def _strict(text: str) -> None:
    try:
        address = parse_address(text)
    except InvalidAddress:
        return
    written = str(address)
    expect(len(address.local) <= MAX_LOCAL_PART and len(address.domain) <= MAX_DOMAIN
           and len(written) <= MAX_PATH - 2, f"too long an address accepted: {written!r}")
    expect(parse_address(written) == address, f"{written!r} does not read back")
    expect(parse_address(f"<{written}>") == address, f"<{written}> does not read back")
    try:
        mailbox = parse_one_mailbox(written)
    except AddressSyntaxError as exc:
        raise AssertionError(f"the header parser refuses {written!r}: {exc}") from None
    expect((mailbox.local, mailbox.domain.lower()) == (address.local, address.domain),
           f"the two parsers read {written!r} differently: {mailbox}")


def _check_mailbox(mailbox: Mailbox) -> None:
    try:
        address = mailbox.address()
    except InvalidAddress:
        return
    expect(address == Address(mailbox.local, mailbox.domain.lower().rstrip(".")),
           f"{mailbox} gives the address {address}")


def _header(text: str) -> None:
    try:
        items = parse_address_list(text)
    except AddressSyntaxError:
        items = None
    try:
        one: Mailbox | None = parse_one_mailbox(text)
    except AddressSyntaxError:
        one = None
    if items is None:
        expect(one is None, f"parse_one_mailbox reads {text!r} that the list parser refuses")
        return
    expect(one is None or items == (one,), f"{text!r}: one mailbox {one} against {items}")
    for mailbox in mailboxes(items):
        _check_mailbox(mailbox)
    readable(items)
    readable(items, decode_words)
    written = format_list(items)
    try:
        again = parse_address_list(written)
    except AddressSyntaxError as exc:
        raise AssertionError(f"{text!r} written as {written!r} does not parse: {exc}") from None
    expect(again == items, f"{text!r} written as {written!r} reads {again} not {items}")


def check(data: bytes) -> None:
    text = data[:MAX_LEN].decode("utf-8", "surrogateescape")
    _strict(text)
    _header(text)
