"""What the FHIR routes need from the rest of the trust space.

- ``DirectoryPort``: the directory store. Reads and searches go straight to its
  ``engine`` (SQL in ``queries``, on the tables of ``directory.schema``); every
  write goes through ``patch_telecom``, which owns the publication rules.
- ``Authorise``: who is calling. It returns the ``Publisher`` (certificate DN and
  the mail domains that operator may publish) or raises ``fastapi.HTTPException``
  401 (no or unknown client certificate) or 403 (not an operator).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from mssante.directory.model import ResourceKind, TelecomOp


@dataclass(frozen=True)
class Publisher:
    """An operator allowed to publish mailboxes of ``domains`` (lower case)."""

    dn: str  # the operator certificate's subject DN
    domains: frozenset[str]


Authorise = Callable[[Request], Awaitable[Publisher]]


class DirectoryPort(Protocol):
    """The directory store as the FHIR routes use it."""

    @property
    def engine(self) -> AsyncEngine: ...

    async def patch_telecom(self, kind: ResourceKind, resource_id: str,
                            ops: Sequence[TelecomOp], *, publisher: str,
                            allowed_domains: frozenset[str]) -> object:
        """Apply ``ops`` to the telecoms of ``kind/resource_id`` in one transaction.

        Raises NotFound, Conflict or PolicyViolation (``mssante.errors``)."""
        ...
