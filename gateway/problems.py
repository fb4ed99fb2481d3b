"""RFC 9457 problem details: every error the gateway answers has this shape.

Each kind of problem has a stable ``type`` URI, a status and a title, listed once
in ``PROBLEM_TYPES``; the OpenAPI document is built from the same table. Items of
``errors`` carry their own stable ``code`` (see ``gateway.validation``).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Response

from contracts.errors import GatekeeperError
from gateway.validation import Violation

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:gatekeeper:problem:"

# Seconds a client should wait before retrying a 503; Kafka leader elections and
# registry restarts on the local stack settle within this.
RETRY_AFTER_S = 5


class Kind(enum.StrEnum):
    MALFORMED_JSON = "malformed-json"
    INVALID_PARAMETER = "invalid-parameter"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not-found"
    METHOD_NOT_ALLOWED = "method-not-allowed"
    IDEMPOTENCY_KEY_IN_USE = "idempotency-key-in-use"
    TOO_LARGE = "too-large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"
    CONTRACT_VIOLATION = "contract-violation"
    IDEMPOTENCY_KEY_REUSED = "idempotency-key-reused"
    INTERNAL_ERROR = "internal-error"
    DELIVERY_UNKNOWN = "delivery-unknown"
    REGISTRY_UNAVAILABLE = "registry-unavailable"
    CONTRACT_NOT_REGISTERED = "contract-not-registered"
    IDEMPOTENCY_STORE_UNAVAILABLE = "idempotency-store-unavailable"
    NOT_READY = "not-ready"


@dataclass(frozen=True)
class ProblemType:
    status: int
    title: str
    when: str


PROBLEM_TYPES: dict[Kind, ProblemType] = {
    Kind.MALFORMED_JSON: ProblemType(
        400, "Malformed JSON", "the body is not valid UTF-8 JSON"
    ),
    Kind.INVALID_PARAMETER: ProblemType(
        400, "Invalid parameter", "a query parameter or header has a wrong value"
    ),
    Kind.UNAUTHORIZED: ProblemType(
        401, "Missing or unknown API key", "no valid Authorization: Bearer token"
    ),
    Kind.FORBIDDEN: ProblemType(
        403,
        "Outside the API key's grant",
        "the key may not write this table, or not with this operation",
    ),
    Kind.NOT_FOUND: ProblemType(404, "Not found", "no such route or contract"),
    Kind.METHOD_NOT_ALLOWED: ProblemType(
        405, "Method not allowed", "the route exists, the method does not"
    ),
    Kind.IDEMPOTENCY_KEY_IN_USE: ProblemType(
        409,
        "Idempotency-Key in use",
        "a request with this Idempotency-Key is still being processed",
    ),
    Kind.TOO_LARGE: ProblemType(
        413, "Request too large", "the body or the number of activities is too large"
    ),
    Kind.UNSUPPORTED_MEDIA_TYPE: ProblemType(
        415, "Unsupported media type", "the body is not sent as application/json"
    ),
    Kind.CONTRACT_VIOLATION: ProblemType(
        422, "Contract violation", "activities break the request format or contracts"
    ),
    Kind.IDEMPOTENCY_KEY_REUSED: ProblemType(
        422,
        "Idempotency-Key reused",
        "the Idempotency-Key was used before for a different request",
    ),
    Kind.INTERNAL_ERROR: ProblemType(
        500, "Internal error", "a fault of the gateway, logged with the request id"
    ),
    Kind.DELIVERY_UNKNOWN: ProblemType(
        503, "Delivery not confirmed", "Kafka did not acknowledge every record"
    ),
    Kind.REGISTRY_UNAVAILABLE: ProblemType(
        503, "Schema registry unavailable", "a contract's registration is unknown"
    ),
    Kind.CONTRACT_NOT_REGISTERED: ProblemType(
        503,
        "Contract not registered",
        "the gateway's contract is not in the registry (run make register-schemas)",
    ),
    Kind.IDEMPOTENCY_STORE_UNAVAILABLE: ProblemType(
        503,
        "Idempotency store unavailable",
        "the database keeping Idempotency-Key answers is unreachable",
    ),
    Kind.NOT_READY: ProblemType(
        503, "Not ready", "Kafka or the schema registry is unreachable"
    ),
}

# Problems a retry may cure by itself; they carry a Retry-After header.
RETRIABLE = frozenset(kind for kind, t in PROBLEM_TYPES.items() if t.status == 503)


@dataclass(frozen=True)
class Problem:
    """One problem answer, before it is rendered."""

    kind: Kind
    detail: str
    errors: Sequence[Violation] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return PROBLEM_TYPES[self.kind].status

    def body(self, request_id: str) -> dict[str, Any]:
        body = {
            "type": TYPE_BASE + self.kind.value,
            "title": PROBLEM_TYPES[self.kind].title,
            "status": self.status,
            "detail": self.detail,
            "request_id": request_id,
            **self.extra,
        }
        if self.errors:
            body["errors"] = [violation.as_json() for violation in self.errors]
        return body

    def response(self, request_id: str) -> Response:
        response = Response(
            json.dumps(self.body(request_id), allow_nan=False),
            status=self.status,
            mimetype=MEDIA_TYPE,
        )
        if self.kind in RETRIABLE:
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        response.headers.update(dict(self.headers))
        return response


class ProblemError(GatekeeperError):
    """Raised to stop handling a request and answer with ``problem``."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(f"{problem.kind.value}: {problem.detail}")
        self.problem = problem
