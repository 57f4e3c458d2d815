"""Text as the directory's searches see it: normalised words.

``normalise`` folds case and strips accents (Unicode NFKD, combining marks dropped);
``words`` splits on anything that is not an ASCII letter or digit, so that query
syntax of any engine (``%``, ``_``, quotes, ``*``, ``-``, ``AND``) is never
interpreted: it only separates words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_WORD = re.compile(r"[a-z0-9]+")


def normalise(value: str) -> str:
    """Lower case, accents stripped (NFKD, combining marks dropped)."""
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def words(value: str) -> list[str]:
    """The normalised words of ``value``: runs of ASCII letters and digits."""
    return _WORD.findall(normalise(value))


def is_word(value: str) -> bool:
    return _WORD.fullmatch(value) is not None


def spaced(items: Iterable[str]) -> str:
    """Words joined by single spaces, with a space before the first and after the last:
    ``LIKE '% word%'`` is then a word-prefix match."""
    return " " + " ".join(items) + " "


def joined(value: str) -> str:
    """The normalised words of ``value`` joined by single spaces (no outer spaces):
    the form of a name that FHIR string searches compare with."""
    return " ".join(words(value))
