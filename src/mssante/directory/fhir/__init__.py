"""The national directory's FHIR R4 API (Annuaire Santé): read, search, publication.

``create_fhir_router(store, authorise)`` gives the routes, to be mounted under
``/fhir``; ``Publisher`` is what ``authorise`` returns for an operator allowed to
publish. Modules: ``ports`` (what the API needs: the store, ``authorise``),
``params`` (search parameters), ``queries`` (SQL), ``resources`` (rendering),
``patch`` (FHIRPath Patch), ``capability`` (CapabilityStatement), ``outcome``
(errors as OperationOutcomes), ``router`` (HTTP).
"""

from __future__ import annotations

from mssante.directory.fhir.ports import Authorise, DirectoryPort, Publisher
from mssante.directory.fhir.router import create_fhir_router

__all__ = ["Authorise", "DirectoryPort", "Publisher", "create_fhir_router"]
