"""The OpenAPI 3.1 description of the gateway, built from its own contracts.

Each contract gets a request schema of its own (its operations, its columns and
the JSON each column's value accepts), so ``/docs`` shows a sender exactly what a
table takes. Problem answers are described from ``gateway.problems``, so the
document and the answers cannot drift apart. Rules that JSON Schema cannot say
(required columns per operation, a column given once, a decimal's digits) are
checked by the gateway and answered with 422; the schemas never forbid what the
gateway accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contracts.catalogue import Contract
from gateway import describe
from gateway.config import GatewayConfig
from gateway.problems import MEDIA_TYPE, PROBLEM_TYPES, RETRY_AFTER_S, TYPE_BASE, Kind
from gateway.validation import Operation

API_VERSION = "1.0.0"
REF = "#/components/schemas/"

_DESCRIPTION = """\
Backend teams POST *activities* (insert, update, upsert or delete of a table row).
Each is checked against its table's contract, converted to Avro and produced to
Kafka; `202 Accepted` means Kafka acknowledged every record (`acks=all`).

* **Auth**: send `Authorization: Bearer <token>`; each key may write some tables
  with some operations (401 without a valid key, 403 outside its grant).
* **All or nothing**: one invalid activity rejects the request, nothing is
  produced, and every problem is listed in an RFC 9457 problem document.
* **Dry run**: `?dry_run=true` runs every check and the Avro conversion,
  produces nothing and answers 200 with the receipts it would have given.
* **Retries**: an `Idempotency-Key` header makes a retried request return the
  first 202 answer instead of producing twice.
* **Timestamps** without an offset are read as UTC.
"""


def build(config: GatewayConfig, catalogue: Mapping[str, Contract]) -> dict[str, Any]:
    """The whole document, for ``/openapi.json``."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Gatekeeper gateway",
            "version": API_VERSION,
            "description": _DESCRIPTION,
        },
        "paths": _paths(),
        "components": {
            "schemas": {**_schemas(config, catalogue), **_contract_schemas(catalogue)},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key configured in the gateway.",
                }
            },
        },
    }


# --- paths -----------------------------------------------------------------------

_SECURED = [{"bearer": []}]


def _paths() -> dict[str, Any]:
    return {
        "/activities": {"post": _post_activities()},
        "/contracts": {
            "get": _get(
                "List the contracts this key may write",
                "ContractList",
                [401],
                secured=True,
            )
        },
        "/contracts/{table}": {
            "get": {
                **_get(
                    "Describe one contract: fields, types, key and versions",
                    "ContractDetail",
                    [401, 403, 404, 503],
                    secured=True,
                ),
                "parameters": [
                    {
                        "name": "table",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
            }
        },
        "/healthz": {"get": _get("The process is alive", "Health", [])},
        "/readyz": {
            "get": _get("Kafka and the schema registry are reachable", "Ready", [503])
        },
        "/metrics": {"get": _plain("Prometheus metrics", "text/plain")},
        "/openapi.json": {"get": _plain("This document", "application/json")},
        "/docs": {"get": _plain("A browsable page of this document", "text/html")},
    }


def _post_activities() -> dict[str, Any]:
    return {
        "summary": "Check activities against their contracts and produce them",
        "operationId": "postActivities",
        "security": _SECURED,
        "parameters": [
            {
                "name": "dry_run",
                "in": "query",
                "required": False,
                "description": "Check and convert only; produce nothing (200).",
                "schema": {"type": "boolean", "default": False},
            },
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": (
                    "Retrying with the same key returns the first 202 answer "
                    "instead of producing again; kept for a day by default."
                ),
                "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$"},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF + "Payload"}}},
        },
        "responses": {
            "200": _json_response("Dry run: every check passed", "Answer"),
            "202": {
                **_json_response("Every record acknowledged by Kafka", "Answer"),
                "headers": {
                    **_request_id_header(),
                    "Idempotent-Replayed": {
                        "description": "true when this is a stored first answer",
                        "schema": {"type": "string", "enum": ["true"]},
                    },
                },
            },
            **_problems([400, 401, 403, 409, 413, 415, 422, 500, 503]),
        },
    }


def _get(
    summary: str, schema: str, errors: list[int], secured: bool = False
) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": _SECURED if secured else [],
        "responses": {
            "200": _json_response(summary, schema),
            **_problems([*errors, 500]),
        },
    }


def _plain(summary: str, media_type: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": [],
        "responses": {
            "200": {
                "description": summary,
                "headers": _request_id_header(),
                "content": {media_type: {"schema": {"type": "string"}}},
            },
            **_problems([500]),
        },
    }


def _json_response(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": _request_id_header(),
        "content": {"application/json": {"schema": {"$ref": REF + schema}}},
    }


def _request_id_header() -> dict[str, Any]:
    return {
        "X-Request-Id": {
            "description": "The request's id, also in the logs and Kafka headers.",
            "required": True,
            "schema": {"type": "string"},
        }
    }


def _problems(statuses: list[int]) -> dict[str, Any]:
    """One response per status, listing the problem types it may carry."""
    responses = {}
    for status in statuses:
        kinds = [k for k, t in PROBLEM_TYPES.items() if t.status == status]
        lines = [f"`{TYPE_BASE}{k.value}`: {PROBLEM_TYPES[k].when}" for k in kinds]
        headers = _request_id_header()
        if status in (409, 503):
            headers["Retry-After"] = {
                "description": f"Seconds to wait before retrying ({RETRY_AFTER_S}).",
                "required": True,
                "schema": {"type": "string"},
            }
        if status == 401:
            headers["WWW-Authenticate"] = {
                "description": "The Bearer challenge (RFC 6750).",
                "required": True,
                "schema": {"type": "string"},
            }
        responses[str(status)] = {
            "description": "; ".join(lines) or "a problem",
            "headers": headers,
            "content": {MEDIA_TYPE: {"schema": {"$ref": REF + "Problem"}}},
        }
    return responses


# --- schemas shared by every contract ---------------------------------------------


def _schemas(config: GatewayConfig, catalogue: Mapping[str, Contract]) -> dict:
    activity_refs = [{"$ref": REF + _activity_name(t)} for t in sorted(catalogue)]
    return {
        "Payload": {
            "type": "object",
            "additionalProperties": False,
            "required": ["activities"],
            "properties": {
                "activities": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": config.max_activities,
                    "items": {"oneOf": activity_refs} if activity_refs else {},
                }
            },
            "description": (
                f"At most {config.max_activities} activities and "
                f"{config.max_body_bytes} bytes (413 beyond)."
            ),
        },
        "Answer": _object(
            {
                "request_id": {"type": "string"},
                "dry_run": {"type": "boolean"},
                "receipts": {"type": "array", "items": {"$ref": REF + "Receipt"}},
            }
        ),
        "Receipt": _object(
            {
                "table": {"type": "string"},
                "operation": {"enum": [op.value for op in Operation]},
                "topic": {"type": "string"},
                "partition": {"type": ["integer", "null"]},
                "offset": {"type": ["integer", "null"]},
                "subject": {"type": "string"},
                "schema_id": {"type": "integer"},
                "schema_version": {"type": "integer"},
            },
            "partition and offset are null in a dry run.",
        ),
        "Problem": _problem_schema(),
        "ErrorItem": _error_item_schema(),
        "ContractList": _object(
            {"contracts": {"type": "array", "items": {"$ref": REF + "ContractSummary"}}}
        ),
        "ContractSummary": _object(_summary_properties()),
        "ContractDetail": _object(
            {
                **_summary_properties(),
                "value_subject": {"type": "string"},
                "key_subject": {"type": ["string", "null"]},
                "compatibility": {"type": "string"},
                "registered": _object(
                    {"version": {"type": "integer"}, "schema_id": {"type": "integer"}}
                ),
                "versions": {"type": "array", "items": {"type": "integer"}},
                "fields": {"type": "array", "items": {"$ref": REF + "Field"}},
            }
        ),
        "Field": _field_schema(),
        "Health": _object({"status": {"const": "ok"}}),
        "Ready": _object(
            {
                "status": {"const": "ready"},
                "checks": _string_map(),
            }
        ),
    }


def _string_map() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": {"type": "string"}}


def _object(
    properties: dict[str, Any], description: str = "", required: list[str] | None = None
) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }
    if description:
        schema["description"] = description
    return schema


def _summary_properties() -> dict[str, Any]:
    return {
        "table": {"type": "string"},
        "doc": {"type": "string"},
        "topic": {"type": "string"},
        "primary_key": {"type": "array", "items": {"type": "string"}},
        "operations": {"type": "array", "items": {"type": "string"}},
        "href": {"type": "string"},
    }


def _field_schema() -> dict[str, Any]:
    properties = {
        "name": {"type": "string"},
        "doc": {"type": "string"},
        "avro_type": {"description": "the field's type as the contract writes it"},
        "postgres_type": {"type": "string"},
        "declared_types": {"type": "array", "items": {"type": "string"}},
        "nullable": {"type": "boolean"},
        "in_primary_key": {"type": "boolean"},
        "required_on_insert": {"type": "boolean"},
        "value": {"type": "object", "description": "JSON Schema of the value"},
        "default": {"description": "the contract's default, when it has one"},
    }
    return _object(properties, required=[k for k in properties if k != "default"])


def _problem_schema() -> dict[str, Any]:
    kinds = [TYPE_BASE + kind.value for kind in Kind]
    properties = {
        "type": {
            "type": "string",
            "description": "One of " + ", ".join(kinds) + "; about:blank otherwise.",
        },
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {"type": "array", "items": {"$ref": REF + "ErrorItem"}},
        "undelivered": {
            "type": "array",
            "items": {"type": "integer"},
            "description": "Indexes of activities not known to be in Kafka (503).",
        },
        "checks": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Each dependency's state (readiness).",
        },
    }
    return {
        **_object(properties, required=["type", "title", "status", "detail"]),
        "description": "RFC 9457 problem details.",
    }


def _error_item_schema() -> dict[str, Any]:
    properties = {
        "code": {"type": "string", "description": "Stable, for programs to act on."},
        "detail": {"type": "string", "description": "What is wrong, for people."},
        "pointer": {"type": "string", "description": "RFC 6901 pointer into the body."},
        "parameter": {"type": "string", "description": "The parameter or header."},
        "subject": {"type": "string", "description": "Registry subject checked."},
        "version": {"type": "integer", "description": "Its version checked."},
        "expected": {"type": "string"},
        "given": {"description": "The value sent (long ones cut short)."},
    }
    return _object(properties, required=["code", "detail"])


# --- one request schema per contract -----------------------------------------------


def _activity_name(table: str) -> str:
    return f"Activity_{table}"


def _contract_schemas(catalogue: Mapping[str, Contract]) -> dict[str, Any]:
    return {
        _activity_name(table): _activity_schema(catalogue[table])
        for table in sorted(catalogue)
    }


def _activity_schema(contract: Contract) -> dict[str, Any]:
    columns = [_column_schema(f) for f in contract.schema["fields"]]
    key = ", ".join(contract.primary_key) or "none (append-only)"
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["operation", "table", "column"],
        "description": f"{contract.schema.get('doc', '')} Primary key: {key}.",
        "properties": {
            "operation": {"enum": describe.operations(contract)},
            "table": {"const": contract.table},
            "column": {"type": "array", "minItems": 1, "items": {"oneOf": columns}},
        },
    }


def _column_schema(avro_field: Mapping[str, Any]) -> dict[str, Any]:
    avro_type = avro_field["type"]
    agreeing = ", ".join(describe.declared_types(avro_type))
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "value"],
        "title": avro_field["name"],
        "description": avro_field.get("doc", ""),
        "properties": {
            "name": {"const": avro_field["name"]},
            "type": {"type": "string", "description": f"optional; one of {agreeing}"},
            "value": describe.value_schema(avro_type),
        },
    }
