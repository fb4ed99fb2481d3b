"""``POST /activities``: from an HTTP request to records acknowledged by Kafka.

``post_activities`` is the whole sequence; each step either passes its result on
or raises ProblemError with the answer the client gets. Nothing is produced
unless every activity of the request passed every check.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Request, Response

from contracts.catalogue import Contract
from contracts.errors import RegistryError
from gateway.auth import ApiKey, KeyRing
from gateway.config import GatewayConfig
from gateway.idempotency import (
    Claim,
    ClaimState,
    IdempotencyStore,
    IdempotencyStoreError,
)
from gateway.metrics import ACTIVITIES, PRODUCE_SECONDS, UNKNOWN_TABLE
from gateway.problems import Kind, Problem, ProblemError
from gateway.producer import ActivityProducer, Delivery, OutgoingRecord
from gateway.schemas import ContractNotRegisteredError, Registration, Registrations
from gateway.validation import (
    Activity,
    ContractRules,
    Draft,
    Operation,
    Violation,
    check_activity,
    check_envelope,
    read_draft,
    unknown_table,
)

logger = logging.getLogger(__name__)

JSON_MEDIA_TYPE = "application/json"
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Visible ASCII, as the Idempotency-Key draft's examples and common practice use.
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_ACTIVITY_INDEX = re.compile(r"^/activities/(\d+)")


@dataclass(frozen=True)
class Services:
    """What one gateway process shares between its request threads."""

    config: GatewayConfig
    catalogue: Mapping[str, Contract]
    rules: Mapping[str, ContractRules]
    keys: KeyRing
    registrations: Registrations
    producer: ActivityProducer
    idempotency: IdempotencyStore


def post_activities(services: Services, request: Request, request_id: str) -> Response:
    """Answer one ``POST /activities``.

    1. authenticate the bearer key (401);
    2. read ``dry_run`` and ``Idempotency-Key`` (400);
    3. read the body: media type, size, strict JSON (415, 413, 400);
    4. claim the Idempotency-Key, or replay its first answer (409, 422);
    5. check, convert and produce (see ``_process``), then keep or release the
       claim: only a 202 is kept, since nothing else produced anything.
    """
    key = authenticate(services.keys, request.headers.get("Authorization"))
    dry_run = _dry_run(request.args)
    idempotency_key = _idempotency_key(request.headers.get(IDEMPOTENCY_HEADER))
    payload = read_json(request)

    if idempotency_key is None or dry_run:
        return _process(services, payload, key, dry_run, request_id)

    claim = _claim(services.idempotency, key, idempotency_key, payload)
    if claim.state is ClaimState.REPLAY:
        return _replay(claim)

    try:
        response = _process(services, payload, key, dry_run, request_id)
    except BaseException:
        _release(services.idempotency, claim)
        raise
    if response.status_code == 202:
        _keep(services.idempotency, claim, response)
    else:
        _release(services.idempotency, claim)
    return response


def _process(
    services: Services, payload: Any, key: ApiKey, dry_run: bool, request_id: str
) -> Response:
    """1. check the request and its activities (413, 403, 422, 503);
    2. encode each activity as Avro key and value records;
    3. dry run: answer 200 now; else produce and wait for Kafka (202, 503).
    """
    activities, registrations = check_request(services, payload, key)
    records = [
        encode(a, registrations[a.contract.table], request_id) for a in activities
    ]

    if dry_run:
        _count(activities, "validated")
        receipts = [
            _receipt(a, registrations[a.contract.table], None) for a in activities
        ]
        return _answer(200, request_id, True, receipts)

    started = time.perf_counter()
    deliveries = services.producer.send(records)
    PRODUCE_SECONDS.observe(time.perf_counter() - started)

    _raise_if_undelivered(activities, deliveries)
    _count(activities, "accepted")
    receipts = [
        _receipt(a, registrations[a.contract.table], d)
        for a, d in zip(activities, deliveries, strict=True)
    ]
    logger.info("accepted activities=%d key=%s", len(receipts), key.name)
    return _answer(202, request_id, False, receipts)


# --- step 1: who is asking, and for what ---------------------------------------


def authenticate(keys: KeyRing, authorization: str | None) -> ApiKey:
    """The caller's key; raise ProblemError (401) without a valid one."""
    key = keys.authenticate(authorization)
    if key is not None:
        return key

    challenge = 'Bearer realm="gatekeeper"'
    if authorization:
        challenge += ', error="invalid_token"'
    raise ProblemError(
        Problem(
            Kind.UNAUTHORIZED,
            "send a valid API key as Authorization: Bearer <token>",
            headers={"WWW-Authenticate": challenge},
        )
    )


def _dry_run(args: Mapping[str, str]) -> bool:
    value = args.get("dry_run")
    if value is None or value in ("true", "false"):
        return value == "true"
    raise _parameter_problem("dry_run", "dry_run must be true or false", value)


def _idempotency_key(header: str | None) -> str | None:
    """The key, with the quotes of its structured-field form removed."""
    if header is None:
        return None
    key = header[1:-1] if len(header) > 1 and header[0] == header[-1] == '"' else header
    if _IDEMPOTENCY_KEY.fullmatch(key):
        return key
    message = f"{IDEMPOTENCY_HEADER} must be 1 to 255 visible ASCII characters"
    raise _parameter_problem(IDEMPOTENCY_HEADER, message, header)


def _parameter_problem(name: str, message: str, given: str) -> ProblemError:
    violation = Violation(
        None,
        "invalid_parameter",
        message,
        "see the API description",
        given,
        parameter=name,
    )
    return ProblemError(Problem(Kind.INVALID_PARAMETER, message, [violation]))


# --- step 3: the body --------------------------------------------------------------


def read_json(request: Request) -> Any:
    """The decoded body; raise ProblemError for a wrong media type or bad JSON.

    JSON is read strictly: UTF-8 only, no NaN or Infinity (nor a number too
    large for a double), and no member twice in one object, which a lenient
    reader would resolve by silently keeping the last one.
    """
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if request.mimetype != JSON_MEDIA_TYPE or charset != "utf-8":
        message = f"send the activities as Content-Type: {JSON_MEDIA_TYPE}"
        violation = Violation(
            None,
            "unsupported_media_type",
            message,
            f"{JSON_MEDIA_TYPE} (UTF-8)",
            request.content_type,
            parameter="Content-Type",
        )
        raise ProblemError(Problem(Kind.UNSUPPORTED_MEDIA_TYPE, message, [violation]))

    body = request.get_data(cache=False)
    try:
        return json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_without_repeats,
            parse_constant=_no_constant,
            parse_float=_finite_float,
        )
    except UnicodeDecodeError as exc:
        message = f"the body is not UTF-8: {exc.reason}"
        raise _malformed("invalid_utf8", message) from None
    except _RepeatedMemberError as exc:
        raise _malformed("repeated_member", str(exc)) from None
    except RecursionError:
        message = "the body nests arrays or objects too deeply"
        raise _malformed("too_deep", message) from None
    except ValueError as exc:
        raise _malformed("malformed_json", f"the body is not JSON: {exc}") from None


class _RepeatedMemberError(ValueError):
    """A JSON object names a member twice."""


def _without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        names = [name for name, _ in pairs]
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise _RepeatedMemberError(f"member {repeated[0]!r} appears twice in an object")
    return found


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    """A JSON number as a float; one too large for a double is refused, not
    silently read as infinity."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:40]} is too large for a double")
    return number


def _malformed(code: str, message: str) -> ProblemError:
    violation = Violation("", code, message)
    return ProblemError(Problem(Kind.MALFORMED_JSON, message, [violation]))


# --- step 4: Idempotency-Key -----------------------------------------------------


def _claim(
    store: IdempotencyStore, key: ApiKey, idempotency_key: str, payload: Any
) -> Claim:
    claim = store.claim(key.name, idempotency_key, payload)
    if claim.state is ClaimState.IN_PROGRESS:
        raise ProblemError(
            Problem(
                Kind.IDEMPOTENCY_KEY_IN_USE,
                "a request with this Idempotency-Key is being processed; retry later",
                headers={"Retry-After": "1"},
            )
        )
    if claim.state is ClaimState.MISMATCH:
        raise ProblemError(
            Problem(
                Kind.IDEMPOTENCY_KEY_REUSED,
                "this Idempotency-Key was used for a different request; use a new key",
            )
        )
    return claim


def _replay(claim: Claim) -> Response:
    logger.info("replayed idempotency answer status=%s", claim.status)
    response = Response(claim.body, status=claim.status, mimetype=JSON_MEDIA_TYPE)
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _keep(store: IdempotencyStore, claim: Claim, response: Response) -> None:
    """Store the 202; if the store fails now, the records are in Kafka all the same,
    so the client still gets its 202 and the claim stays pending until its lease
    ends."""
    try:
        store.complete(claim, 202, response.get_data(as_text=True))
    except IdempotencyStoreError as exc:
        logger.warning("idempotency answer not kept, a late retry may repeat: %s", exc)


def _release(store: IdempotencyStore, claim: Claim) -> None:
    """Release the claim; if that fails, the lease frees the key later."""
    try:
        store.release(claim)
    except IdempotencyStoreError as exc:
        logger.warning("idempotency claim not released, its lease will: %s", exc)


# --- step 5: check, encode, produce ------------------------------------------------


def check_request(
    services: Services, payload: Any, key: ApiKey
) -> tuple[list[Activity], dict[str, Registration]]:
    """Every activity, checked; raise ProblemError with every violation found.

    1. the envelope (422, or 413 past the count limit);
    2. each activity's shape, then the key's grant over all of them (403);
    3. the registration of each contract named, then each activity against it.
    """
    envelope = check_envelope(payload, services.config.max_activities)
    if envelope:
        _reject(Kind.CONTRACT_VIOLATION, envelope, [], services.catalogue)

    drafts, violations = [], []
    for index, raw in enumerate(payload["activities"]):
        draft, found = read_draft(index, raw)
        violations += found
        if draft is not None:
            drafts.append(draft)

    denied = _outside_grant(drafts, key)
    if denied:
        _reject(Kind.FORBIDDEN, denied, drafts, services.catalogue)

    registrations = _registrations(services, drafts)
    activities, found = _check_against_contracts(services, drafts, key, registrations)
    violations += found
    if violations:
        _reject(Kind.CONTRACT_VIOLATION, violations, drafts, services.catalogue)
    return activities, registrations


def _outside_grant(drafts: list[Draft], key: ApiKey) -> list[Violation]:
    denied = []
    for draft in drafts:
        if draft.table is not None and not key.grant.allows_table(draft.table):
            message = f"API key {key.name!r} may not write table {draft.table!r}"
            denied.append(
                Violation(f"{draft.where}/table", "table_not_granted", message)
            )
        elif draft.operation is not None and not key.grant.allows_operation(
            draft.operation
        ):
            message = f"API key {key.name!r} may not {draft.operation} rows"
            denied.append(
                Violation(f"{draft.where}/operation", "operation_not_granted", message)
            )
    return denied


def _registrations(services: Services, drafts: list[Draft]) -> dict[str, Registration]:
    """Look up each named contract's registration (503 when the registry fails)."""
    tables = {d.table for d in drafts if d.table in services.catalogue}
    found = {}
    for table in sorted(tables):
        try:
            found[table] = services.registrations.get(services.catalogue[table])
        except ContractNotRegisteredError as exc:
            logger.error("contract not registered table=%s: %s", table, exc)
            detail = f"the contract of table {table!r} is not registered; retry later"
            raise ProblemError(Problem(Kind.CONTRACT_NOT_REGISTERED, detail)) from exc
        except RegistryError as exc:
            logger.warning("registry unavailable table=%s: %s", table, exc)
            detail = "the schema registry did not answer; retry later"
            raise ProblemError(Problem(Kind.REGISTRY_UNAVAILABLE, detail)) from exc
    return found


def _check_against_contracts(
    services: Services,
    drafts: list[Draft],
    key: ApiKey,
    registrations: Mapping[str, Registration],
) -> tuple[list[Activity], list[Violation]]:
    visible = sorted(t for t in services.catalogue if key.grant.allows_table(t))
    activities, violations = [], []
    for draft in drafts:
        if draft.table is None:
            continue
        rules = services.rules.get(draft.table)
        if rules is None:
            violations.append(unknown_table(draft, visible))
            continue

        version = registrations[draft.table].value.version
        activity, found = check_activity(draft, rules, version)
        violations += found
        if activity is not None:
            activities.append(activity)
    return activities, violations


def _reject(
    kind: Kind,
    violations: Sequence[Violation],
    drafts: Sequence[Draft],
    catalogue: Mapping[str, Contract],
) -> None:
    """Count the rejected activities, then raise the problem answer."""
    if any(v.code == "too_many_activities" for v in violations):
        kind = Kind.TOO_LARGE

    tables = {d.index: d.table for d in drafts if d.table in catalogue}
    for violation in violations:
        match = _ACTIVITY_INDEX.match(violation.pointer or "")
        table = tables.get(int(match[1])) if match else None
        ACTIVITIES.labels("rejected", table or UNKNOWN_TABLE, violation.code).inc()

    detail = f"{len(violations)} problem(s) found; nothing was produced"
    raise ProblemError(Problem(kind, detail, sorted(violations, key=_activity_order)))


def _activity_order(violation: Violation) -> int:
    """Sort problems by activity, keeping each activity's in the order found."""
    match = _ACTIVITY_INDEX.match(violation.pointer or "")
    return int(match[1]) if match else -1


def encode(
    activity: Activity, registration: Registration, request_id: str
) -> OutgoingRecord:
    """The Kafka record of one activity: Avro key, Avro value (none for a delete)."""
    contract = activity.contract
    key = None
    if registration.key is not None:
        key = registration.key.encode(activity.key or {})
    value = None
    if activity.operation is not Operation.DELETE:
        value = registration.value.encode(activity.datum)

    headers = [
        ("gk-operation", activity.operation.value.encode()),
        ("gk-columns", ",".join(activity.columns).encode()),
        ("gk-request-id", request_id.encode()),
    ]
    return OutgoingRecord(contract.topic, key, value, headers)


def _raise_if_undelivered(
    activities: Sequence[Activity], deliveries: Sequence[Delivery]
) -> None:
    """Any record not acknowledged makes the outcome unknown: 503, never 202."""
    failed = [
        (a, d) for a, d in zip(activities, deliveries, strict=True) if not d.delivered
    ]
    if not failed:
        return

    undelivered = [a.index for a, _ in failed]
    logger.warning(
        "activities=%s not known to be delivered first_error=%s",
        undelivered,
        failed[0][1].error,
    )
    errors = [
        Violation(
            f"/activities/{a.index}",
            "not_known_delivered",
            f"Kafka did not acknowledge the record of table {a.contract.table}: "
            f"{d.error}",
        )
        for a, d in failed
    ]
    detail = (
        f"{len(failed)} of {len(activities)} records were not acknowledged by Kafka "
        "and may or may not have been written; retry the whole request"
    )
    extra = {"undelivered": undelivered}
    raise ProblemError(Problem(Kind.DELIVERY_UNKNOWN, detail, errors, extra=extra))


def _count(activities: Sequence[Activity], outcome: str) -> None:
    for activity in activities:
        ACTIVITIES.labels(outcome, activity.contract.table, "-").inc()


def _receipt(
    activity: Activity, registration: Registration, delivery: Delivery | None
) -> dict[str, Any]:
    writer = registration.value
    return {
        "table": activity.contract.table,
        "operation": activity.operation.value,
        "topic": activity.contract.topic,
        "partition": delivery.partition if delivery else None,
        "offset": delivery.offset if delivery else None,
        "subject": writer.subject,
        "schema_id": writer.schema_id,
        "schema_version": writer.version,
    }


def _answer(
    status: int, request_id: str, dry_run: bool, receipts: list[dict[str, Any]]
) -> Response:
    body = {"request_id": request_id, "dry_run": dry_run, "receipts": receipts}
    return Response(json.dumps(body), status=status, mimetype=JSON_MEDIA_TYPE)
