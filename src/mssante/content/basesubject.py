"""The base subject of a message (RFC 5256 §2.1): what SORT SUBJECT compares and what
THREAD groups by.

``base_subject(text)`` takes the Subject value with its encoded words already decoded
(content.mime.decode_words) and returns the base subject case-mapped with
i;ascii-casemap (RFC 4790 §9.2: A-Z become a-z, nothing else changes), which is the
comparator SORT and THREAD use by default (RFC 5256 §2.2), and whether the extraction
removed a reply or forward marker (RFC 5256 §2.1: ``Re:``, ``Fwd:``, a ``(fwd)``
trailer or ``[fwd: ...]``) - THREAD=REFERENCES reads it (§3 step 5).

The grammar (RFC 5256 §5)::

    subj-refwd   = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
    subj-blob    = "[" *BLOBCHAR "]" *WSP
    subj-leader  = (*subj-blob subj-refwd) / WSP
    subj-trailer = "(fwd)" / WSP
    subj-fwd     = "[fwd:" subject "]"
"""

from __future__ import annotations

import re

# after step (1) white space is single spaces
_TRAILER = re.compile(r"(?:\(fwd\)| )\Z", re.IGNORECASE)
_REFWD = re.compile(r"(?:\[[^\[\]]*\] *)*(?:re|fwd?) *(?:\[[^\[\]]*\] *)?:", re.IGNORECASE)
_BLOB = re.compile(r"\[[^\[\]]*\] *")
_WHITE = re.compile(r"[ \t\r\n]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def casemap(text: str) -> str:
    """i;ascii-casemap (RFC 4790 §9.2): ASCII letters to lower case, nothing else."""
    return text.translate(_ASCII_LOWER)


def base_subject(subject: str) -> tuple[str, bool]:
    """(base subject, case-mapped; whether it was a reply or forward), RFC 5256 §2.1."""
    text = _WHITE.sub(" ", subject)  # (1) tabs and continuations, runs of spaces
    refwd = False
    while True:
        # (2) remove trailers, repeatedly
        while True:
            match = _TRAILER.search(text)
            if match is None:
                break
            if match.group() != " ":
                refwd = True
            text = text[:match.start()]
        # (3), (4), (5): leaders and a leading blob until neither matches
        while True:
            changed = False
            while True:
                if text.startswith(" "):
                    text = text[1:]
                    changed = True
                    continue
                match = _REFWD.match(text)
                if match is None:
                    break
                text = text[match.end():]
                refwd = changed = True
            match = _BLOB.match(text)
            if match is not None and text[match.end():]:
                text = text[match.end():]
                changed = True
            if not changed:
                break
        # (6) a "[fwd: ...]" wrapper: removed, and the steps again from (2)
        if len(text) >= 6 and casemap(text[:5]) == "[fwd:" and text.endswith("]"):
            text = text[5:-1]
            refwd = True
            continue
        return casemap(text), refwd
