"""Recipient suggestions from the national directory, for the webmail's recipient field.

The operator asks the trust space's people search (``GET /directory/autocomplete``,
served from its in-memory index, see README "The national directory") over HTTPS
with its own certificate (``publishing.client.DirectoryClient``), and turns each
answer into a ``Suggestion``: who (display name, profession, specialty), where
(organisation, service, city), which mailbox (address, type and its French label).

What is searched (the trust space decides, this module only passes the query on):
every typed word must begin a word of the family or given name, profession,
specialty, organisation, service, city, postal code, department or the address's
local part (one missing letter tolerated in words of four letters or more); case
and accents do not count ("helene" finds "Hélène", "HÉLÈNE" finds "Helene"); a query
with an ``@`` is the beginning of an address ("dupont@ch-x").

The query as this module passes it (``clean_query``):
- control and format characters (Unicode categories C*) become spaces, runs of
  spaces become one, the ends are trimmed; any other character is kept (Unicode
  NFC), the trust space folds case and accents and reads anything that is not a
  letter or a digit as a separator, so quotes, ``%``, ``*`` and operators mean
  nothing;
- fewer than ``MIN_QUERY`` (2) letters or digits: no request, no suggestion;
- longer than ``MAX_QUERY`` (100) characters: the first 100 are searched (a longer
  query only narrows what its beginning finds, and no name is that long).

Invariants:
- Answers are cached ``CACHE_SECONDS`` (30 s) per cleaned query (case-folded) and
  limit, at most ``CACHE_ENTRIES`` queries, least recently used out: a recipient
  field asks the same beginnings again and again, the directory changes slowly.
  Failures are never cached.
- A request takes at most ``timeout`` seconds (``SEARCH_TIMEOUT``, 3 s, by
  default): a recipient field cannot wait longer. Whatever goes wrong (the trust
  space out of reach, too slow, an error, an answer that is not one) raises
  ``DirectoryUnavailable``, whose ``str()`` is "Annuaire indisponible".
- A suggestion without a mailbox address or of an unknown mailbox type is dropped;
  PAT mailboxes are never in the directory.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from mssante.domain.mailboxes import TYPE_LABELS, MailboxType
from mssante.errors import DirectoryUnavailable
from mssante.publishing.client import DirectoryClient

log = logging.getLogger(__name__)

MIN_QUERY: Final = 2  # letters or digits
MAX_QUERY: Final = 100  # characters searched
MAX_LIMIT: Final = 50  # the trust space's largest page (directory.service.AUTOCOMPLETE_MAX)
CACHE_SECONDS: Final = 30.0
CACHE_ENTRIES: Final = 1000
SEARCH_TIMEOUT: Final = 3.0

# The civility codes of the directory's rows ("DR"), as written before a name;
# other codes are shown as they are.
_CIVILITIES: Final = {"DR": "Dr", "PR": "Pr", "M": "M.", "MME": "Mme", "MLLE": "Mlle"}


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One recipient the directory suggests."""

    address: str  # the mailbox address, lower case
    mailbox_type: MailboxType  # PER, ORG, APP or CAB
    mailbox_type_label: str  # "Nominative", "Organisationnelle", "Applicative", "Cabinet"
    display_name: str  # "Dr Paul DUPONT"; for a mailbox of no person, its service,
    # else its organisation, else its address
    profession: str  # label, e.g. "Médecin"; "" when none (ORG, APP)
    specialty: str  # savoir-faire label, e.g. "Cardiologie et maladies vasculaires"; or ""
    organisation: str  # raison sociale (else enseigne) of the organisation; or ""
    service: str  # the service of an organisational mailbox; or ""
    city: str  # the organisation's postal code and town, e.g. "75013 PARIS"; or ""


def clean_query(query: str) -> str | None:
    """The query as searched (module docstring); None: too short to search."""
    text = "".join(" " if unicodedata.category(c).startswith("C") else c
                   for c in unicodedata.normalize("NFC", query))
    text = " ".join(text.split())[:MAX_QUERY].strip()
    if sum(c.isalnum() for c in text) < MIN_QUERY:
        return None
    return text


def _text(answer: dict[str, Any], key: str) -> str:
    value = answer.get(key)
    return value.strip() if isinstance(value, str) else ""


def _display_name(answer: dict[str, Any]) -> str:
    family, given = _text(answer, "family_name"), _text(answer, "given_name")
    if family or given:
        civility = _text(answer, "civility")
        return " ".join(p for p in (_CIVILITIES.get(civility.upper(), civility), given,
                                    family) if p)
    return (_text(answer, "name") or _text(answer, "service")
            or _text(answer, "organisation") or _text(answer, "address"))


def suggestion(answer: dict[str, Any]) -> Suggestion | None:
    """A suggestion from one answer of the trust space; None when it names no mailbox
    of a published type."""
    address = _text(answer, "address").lower()
    try:
        kind = MailboxType(_text(answer, "type").upper())
    except ValueError:
        return None
    if not address or kind is MailboxType.PAT:
        return None
    return Suggestion(
        address=address, mailbox_type=kind, mailbox_type_label=TYPE_LABELS[kind],
        display_name=_display_name(answer), profession=_text(answer, "profession"),
        specialty=_text(answer, "specialty"), organisation=_text(answer, "organisation"),
        service=_text(answer, "service"), city=_text(answer, "city"))


class DirectorySearch:
    """Recipient suggestions from one trust space; ``aclose`` at the end.

    ``client`` is a ``DirectoryClient`` made for searches: its timeout is the
    search's (``SEARCH_TIMEOUT``)."""

    def __init__(self, client: DirectoryClient, *, cache_seconds: float = CACHE_SECONDS,
                 cache_entries: int = CACHE_ENTRIES) -> None:
        self.client = client
        self.cache_seconds = cache_seconds
        self.cache_entries = cache_entries
        self._cache: OrderedDict[tuple[str, int], tuple[float, list[Suggestion]]] = \
            OrderedDict()

    async def search(self, query: str, limit: int = 10) -> list[Suggestion]:
        """At most ``limit`` (1 to ``MAX_LIMIT``) suggestions for what was typed, best
        first; ``[]`` for a query too short; DirectoryUnavailable when the trust space
        does not answer (module docstring)."""
        text = clean_query(query)
        limit = min(limit, MAX_LIMIT)
        if text is None or limit < 1:
            return []
        key = (text.casefold(), limit)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self.cache_seconds:
            self._cache.move_to_end(key)
            return list(cached[1])
        try:
            answers = await self.client.autocomplete(text, limit)
        except DirectoryUnavailable as exc:
            log.warning("directory search %r at %s failed: %s", text, self.client.base_url,
                        exc.reason)
            raise
        found = [s for s in map(suggestion, answers) if s is not None][:limit]
        self._remember(key, now, found)
        return list(found)

    def _remember(self, key: tuple[str, int], now: float, found: Sequence[Suggestion]) -> None:
        self._cache[key] = (now, list(found))
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_entries:
            self._cache.popitem(last=False)

    async def aclose(self) -> None:
        await self.client.aclose()
