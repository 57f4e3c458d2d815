"""The operator's HTTPS client of the trust space's directory: publications (one
conditional FHIR PATCH each) and the people search of recipient fields.

``PATCH {trust}/fhir/{Practitioner|Organization}?identifier={system}|{idNat}`` with a
FHIRPath Patch body (FHIR R4 §3.1.0.7.2 conditional patch, §3.1.0.11 FHIRPath
Patch), over mutual TLS: the operator presents its MTA certificate, the trust space
lets it publish only addresses of the domains the whitelist binds to that
certificate's DN. The trust space's certificate must chain to ``ca_file`` (the
trust-space root, nothing else) and name the host of the URL.

What an answer means (``classify``):
- 2xx: done.
- 5xx, 408, 425, 429, redirections, timeouts, connection and TLS failures: retry
  (the trust space is away or busy; the same PATCH is safe to send again).
- 404, 405 or 501 without an OperationOutcome: retry. The trust space answers a
  missing resource with an OperationOutcome; without one, the URL has no directory
  API (a trust space not yet upgraded, a proxy), which is not the publication's
  fault.
- 401, 403 and 404 with an OperationOutcome: retry, with the reason kept. They are
  states that resolve without the operator touching the mailbox: the professional
  or organisation reaches the national referential with the next import (404), the
  whitelist binds the domain or the renewed certificate (403), the certificate is
  presented again (401). ``directory status`` shows the reason meanwhile.
- any other 4xx: failed, for good; the reason is the OperationOutcome's
  ``issue[0].diagnostics`` (412 several match, 400/413/415/422 a patch the trust
  space will never accept).

A search (``autocomplete``) asks ``GET {trust}/directory/autocomplete?q=…&limit=…``
over the same connection; anything but a 200 with the expected JSON raises
``DirectoryUnavailable`` (the webmail says "Annuaire indisponible").

The identifier is a FHIR token value: ``\\``, ``,``, ``|`` and ``$`` in it are
escaped (FHIR R4 §3.1.1.5.2) so that it can never become several alternatives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from mssante.directory import contact
from mssante.errors import DirectoryUnavailable
from mssante.pki.tls import client_context
from mssante.store.models import DirectoryEntry

FHIR_JSON = "application/fhir+json"
_RETRIED_STATUSES = frozenset({408, 425, 429})
_WAITING_STATUSES = frozenset({401, 403, 404})  # see the module docstring
_NO_API_STATUSES = frozenset({404, 405, 501})
_MAX_REASON = 500  # characters of an answer kept as the reason


class Verdict(StrEnum):
    DONE = "done"  # the trust space applied the patch
    RETRY = "retry"  # try again later
    FAILED = "failed"  # refused for good


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    reason: str = ""  # why, for a retry or a failure
    status: int | None = None  # the HTTP status, when an answer came


def operation_outcome_reason(body: Any) -> str | None:
    """The reason an OperationOutcome gives (issue[0] diagnostics, else details, else
    code); None when ``body`` is not an OperationOutcome (FHIR R4 §2.36.1)."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return None
    issues = body.get("issue")
    issue = issues[0] if isinstance(issues, list) and issues else {}
    if not isinstance(issue, dict):
        return ""
    diagnostics = issue.get("diagnostics")
    if isinstance(diagnostics, str) and diagnostics:
        return diagnostics
    details = issue.get("details")
    if isinstance(details, dict) and isinstance(details.get("text"), str):
        return str(details["text"])
    code = issue.get("code")
    return code if isinstance(code, str) else ""


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _answer_text(response: httpx.Response, body: Any) -> str:
    """A short reason from an answer that is not an OperationOutcome."""
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    text = response.text.strip()
    return text[:_MAX_REASON] if text else response.reason_phrase


def escape_token(value: str) -> str:
    """``value`` as one FHIR token value (FHIR R4 §3.1.1.5.2 escaping)."""
    for char in ("\\", ",", "|", "$"):
        value = value.replace(char, "\\" + char)
    return value


def classify(response: httpx.Response) -> Outcome:
    """What the trust space's answer to a publication means."""
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(Verdict.DONE, status=status)
    body = _body(response)
    outcome = operation_outcome_reason(body)
    reason = f"HTTP {status}: {outcome if outcome else _answer_text(response, body)}"
    if status >= 500 or status in _RETRIED_STATUSES or not 400 <= status < 500:
        return Outcome(Verdict.RETRY, reason, status)
    if outcome is None and status in _NO_API_STATUSES:
        return Outcome(Verdict.RETRY, f"{reason} (no directory API at this URL)", status)
    if status in _WAITING_STATUSES:
        return Outcome(Verdict.RETRY, reason, status)
    return Outcome(Verdict.FAILED, reason, status)


class DirectoryClient:
    """Sends publications to one trust space and asks its people search; ``aclose`` (or
    ``async with``) at the end."""

    def __init__(self, base_url: str, *, ca_file: Path, cert_file: Path,
                 key_file: Path | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        context = client_context(ca_file, cert_file, key_file, check_hostname=True)
        self._http = httpx.AsyncClient(base_url=self.base_url, verify=context,
                                       timeout=httpx.Timeout(timeout),
                                       follow_redirects=False, trust_env=False)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def send(self, entry: DirectoryEntry) -> Outcome:
        """Send one outbox entry."""
        point = json.loads(entry.body) if entry.body is not None else None
        return await self.publish(entry.resource, entry.identifier, entry.operation,
                                  entry.address, point)

    async def publish(self, resource: str, identifier: str, operation: str, address: str,
                      point: contact.JSON | None = None) -> Outcome:
        """Add (create or change) or delete ``address`` on the resource named by
        ``identifier``; never raises for what the network or the server does."""
        parameters = contact.patch_parameters(resource, operation, address, point)
        system = contact.identifier_system(resource)
        try:
            response = await self._http.patch(
                f"/fhir/{resource}",
                params={"identifier": f"{system}|{escape_token(identifier)}"},
                content=json.dumps(parameters, ensure_ascii=False).encode("utf-8"),
                headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
        except httpx.HTTPError as exc:  # connection, TLS, timeout, protocol
            return Outcome(Verdict.RETRY, f"{type(exc).__name__}: {exc}".rstrip(": "))
        except OSError as exc:
            return Outcome(Verdict.RETRY, f"{type(exc).__name__}: {exc}")
        return classify(response)

    async def autocomplete(self, query: str, limit: int) -> list[dict[str, Any]]:
        """The trust space's people search (``/directory/autocomplete``): its answers
        as JSON objects, best first; DirectoryUnavailable when none came."""
        try:
            response = await self._http.get("/directory/autocomplete",
                                            params={"q": query, "limit": limit},
                                            headers={"Accept": "application/json"})
        except (httpx.HTTPError, OSError) as exc:  # connection, TLS, timeout, protocol
            raise DirectoryUnavailable(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        if response.status_code != 200:
            raise DirectoryUnavailable(
                f"HTTP {response.status_code}: {_answer_text(response, _body(response))}")
        results = _body(response)
        results = results.get("results") if isinstance(results, dict) else None
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise DirectoryUnavailable("the answer is not the directory's search results")
        return results
