"""mssante: an open-source MSSanté environment (trust space and operators)."""

from __future__ import annotations

__version__ = "0.1.0"
