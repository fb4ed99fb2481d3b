"""RFC 9457 problem details: every error the gateway answers has this shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Response, json

from gateway.validation import Violation

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:gatekeeper:problem:"


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    request_id: str,
    errors: Sequence[Violation] = (),
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id,
        **extra,
    }
    if errors:
        body["errors"] = [violation.as_json() for violation in errors]
    response = Response(json.dumps(body), status=status, mimetype=MEDIA_TYPE)
    response.headers.update(headers or {})
    return response
