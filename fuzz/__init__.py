"""Coverage-guided fuzz targets of the parsers that read what strangers send.

One module per target, each with ``check(data: bytes) -> None``: it feeds the octets to
the parser and raises when an oracle fails (an exception other than the parser's
documented error types, a broken round trip, a result that does not follow the grammar
it claims). ``fuzz/run.py`` runs a target under atheris; ``tests/fuzz`` replays every
file of ``fuzz/corpus/<target>/`` through the same ``check``, with time and memory bounds.
"""

from __future__ import annotations

TARGETS = ("imap_command", "smtp_command", "smtp_params", "mime", "address")
