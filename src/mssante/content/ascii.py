"""Protocol reply text in ASCII.

IMAP status text is 7-bit unless the client enabled UTF-8 (RFC 9051 §9, ``text``:
"Non-ASCII text can only be returned after ENABLE IMAP4rev2 or ENABLE UTF8=ACCEPT");
SMTP reply text is US-ASCII (RFC 5321 §4.2; RFC 6531 does not change replies). Messages
written for people (``Pro Santé Connect``) are folded here: accents dropped, any other
non-ASCII character replaced, so that a client never receives bytes it may reject.
"""

from __future__ import annotations

import unicodedata


def to_ascii(text: str) -> str:
    """``text`` without accents; characters with no ASCII form become ``?``."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    return kept.encode("ascii", "replace").decode("ascii")
