"""The HTTP API: ``POST /activities`` and the operational routes around it."""

from __future__ import annotations

import logging
import uuid

from confluent_kafka.serialization import MessageField, SerializationError
from flask import Flask, Response, g, jsonify, request

from contracts.catalogue import load_catalogue
from contracts.errors import RegistryError
from contracts.registry import connect
from gateway.config import GatewayConfig
from gateway.problems import problem
from gateway.producer import ActivityProducer, OutgoingRecord
from gateway.schemas import WriterSchemas
from gateway.validation import Activity, check_payload

logger = logging.getLogger(__name__)

RETRY_AFTER_S = "5"


def create_app(config: GatewayConfig | None = None) -> Flask:
    """Build the app with one producer and one schema cache for this process."""
    config = config or GatewayConfig.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes

    catalogue = load_catalogue(config.contracts_dir)
    registry = connect(config.registry_url)
    schemas = WriterSchemas(registry, config.schema_cache_ttl_s)
    producer = ActivityProducer(config.kafka_bootstrap, config.delivery_timeout_s)
    app.extensions["gatekeeper.producer"] = producer

    @app.before_request
    def assign_request_id() -> None:
        g.request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex

    @app.after_request
    def echo_request_id(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.request_id
        return response

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.post("/activities")
    def post_activities():
        if not request.is_json:
            return problem(
                415,
                "unsupported-media-type",
                "Unsupported media type",
                "send the activities as Content-Type: application/json",
                g.request_id,
            )
        payload = request.get_json(silent=True)
        if payload is None:
            return problem(
                400,
                "malformed-json",
                "Malformed JSON",
                "the body is not valid JSON",
                g.request_id,
            )

        activities, violations = check_payload(
            payload, catalogue, config.max_activities
        )
        if violations:
            return problem(
                422,
                "contract-violation",
                "Contract violation",
                f"{len(violations)} problem(s) found; nothing was produced",
                g.request_id,
                errors=violations,
            )

        try:
            records, writers = _records(activities, schemas, g.request_id)
        except RegistryError as exc:
            logger.warning("request_id=%s registry error: %s", g.request_id, exc)
            return problem(
                503,
                "registry-unavailable",
                "Schema registry unavailable",
                "the contract's registered schema could not be read; retry later",
                g.request_id,
                headers={"Retry-After": RETRY_AFTER_S},
            )

        deliveries = producer.send(records)
        failed = [
            a.index
            for a, d in zip(activities, deliveries, strict=True)
            if not d.delivered
        ]
        if failed:
            logger.warning(
                "request_id=%s activities=%s not known to be delivered",
                g.request_id,
                failed,
            )
            return problem(
                503,
                "delivery-unknown",
                "Delivery not confirmed",
                "Kafka did not acknowledge every record; the listed activities may or "
                "may not have been written. Retry the request.",
                g.request_id,
                headers={"Retry-After": RETRY_AFTER_S},
                undelivered=failed,
            )

        receipts = [
            _receipt(a, d, writers[a.index])
            for a, d in zip(activities, deliveries, strict=True)
        ]
        logger.info("request_id=%s accepted activities=%d", g.request_id, len(receipts))
        return jsonify(request_id=g.request_id, receipts=receipts), 202

    return app


def _records(activities: list[Activity], schemas: WriterSchemas, request_id: str):
    """Serialize each activity with its subject's registered schema."""
    records, writers = [], {}
    for activity in activities:
        contract = activity.contract
        value_writer = schemas.get(contract.value_subject)
        key = None
        if contract.is_keyed:
            key_writer = schemas.get(contract.key_subject)
            key = _serialize(key_writer, activity.key, contract.topic, MessageField.KEY)
        value = None
        if activity.operation != "delete":
            value = _serialize(
                value_writer, activity.datum, contract.topic, MessageField.VALUE
            )
        headers = [
            ("gk-operation", activity.operation.value.encode()),
            ("gk-columns", ",".join(activity.columns).encode()),
            ("gk-request-id", request_id.encode()),
        ]
        records.append(OutgoingRecord(contract.topic, key, value, headers))
        writers[activity.index] = value_writer
    return records, writers


def _serialize(writer, datum, topic, field) -> bytes:
    try:
        return writer.serialize(datum, topic, field)
    except SerializationError as exc:
        raise RegistryError(f"cannot serialize for {writer.subject}: {exc}") from exc


def _receipt(activity: Activity, delivery, writer) -> dict:
    return {
        "table": activity.contract.table,
        "operation": activity.operation.value,
        "topic": delivery.topic,
        "partition": delivery.partition,
        "offset": delivery.offset,
        "subject": writer.subject,
        "schema_id": writer.schema_id,
        "schema_version": writer.version,
    }
