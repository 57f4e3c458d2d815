"""FHIR errors: one exception that knows its HTTP status and its OperationOutcome.

Every error the FHIR routes answer is an OperationOutcome (FHIR R4
operationoutcome.html) with one issue: ``severity`` ``error`` (``fatal`` for a
server failure), ``code`` from IssueType (FHIR R4 valueset-issue-type.html) and
``diagnostics``, a sentence a person understands. Handlers raise ``FhirError``
anywhere; the router turns it into the response once.

The diagnostics may quote what a client sent: they are cut at
``MAX_DIAGNOSTICS`` characters, and a lone surrogate (which no UTF-8 answer can
carry) is written as its ``\\uXXXX`` escape, so that rendering an error never fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_DIAGNOSTICS = 2000

# HTTP status -> IssueType code, for errors raised without an explicit code.
_DEFAULT_CODES: Mapping[int, str] = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    412: "multiple-matches",
    413: "too-costly",
    414: "too-costly",
    415: "not-supported",
    422: "processing",
    500: "exception",
}


class FhirError(Exception):
    """An error answered as ``status`` with an OperationOutcome."""

    def __init__(self, status: int, diagnostics: str, *, code: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code or _DEFAULT_CODES.get(status, "processing")
        self.diagnostics = _printable(diagnostics)
        self.headers = dict(headers or {})

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.code, self.diagnostics,
                                 severity="fatal" if self.status >= 500 else "error")


def operation_outcome(code: str, diagnostics: str, *, severity: str = "error") -> dict[str, Any]:
    """An OperationOutcome with a single issue."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def bad_request(diagnostics: str, *, code: str = "invalid") -> FhirError:
    return FhirError(400, diagnostics, code=code)


def unprocessable(diagnostics: str, *, code: str = "processing") -> FhirError:
    return FhirError(422, diagnostics, code=code)


def _printable(diagnostics: str) -> str:
    if len(diagnostics) > MAX_DIAGNOSTICS:
        diagnostics = diagnostics[:MAX_DIAGNOSTICS - 3] + "..."
    return diagnostics.encode("utf-8", "backslashreplace").decode("utf-8")
