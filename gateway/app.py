"""The HTTP API: ``POST /activities`` and the routes around it.

``create_app`` is the WSGI factory gunicorn calls in each worker process; each
process gets its own Kafka producer, schema cache and database pool.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from contracts.catalogue import load_catalogue
from contracts.errors import RegistryError
from contracts.registry import connect
from gateway import describe, docs_page, openapi
from gateway.activities import Services, authenticate, post_activities
from gateway.auth import KeyRing
from gateway.config import GatewayConfig
from gateway.idempotency import IdempotencyStore, IdempotencyStoreError
from gateway.logs import request_id_from
from gateway.metrics import REQUESTS, exposition
from gateway.problems import Kind, Problem, ProblemError
from gateway.producer import ActivityProducer
from gateway.schemas import CLIENT_SETTINGS, ContractNotRegisteredError, Registrations
from gateway.validation import ContractRules, Violation

logger = logging.getLogger(__name__)

SERVICES = "gatekeeper"

# Werkzeug's HTTP errors that have a problem type of their own.
_HTTP_KINDS = {404: Kind.NOT_FOUND, 405: Kind.METHOD_NOT_ALLOWED, 413: Kind.TOO_LARGE}

# A pending Idempotency-Key outlives its request by this much before another
# request may take it over (the request's own deadline is delivery_timeout_s).
LEASE_MARGIN_S = 30.0


def create_app(config: GatewayConfig | None = None) -> Flask:
    """Build the app: one producer, schema cache and database pool per process."""
    config = config or GatewayConfig.from_env()
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    # Every route lists its methods; OPTIONS is answered 405 like any other.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False

    services = _start_services(config)
    app.extensions[SERVICES] = services
    spec = openapi.build(config, services.catalogue)

    _install_hooks(app)
    _install_error_handlers(app)
    _install_routes(app, services, spec)

    settings = " ".join(f"{k}={v}" for k, v in config.masked().items())
    logger.info("gateway started contracts=%d %s", len(services.catalogue), settings)
    return app


def close_app(app: Flask) -> None:
    """Flush the producer and close the database pool (gunicorn's worker_exit)."""
    services: Services | None = app.extensions.get(SERVICES)
    if services is not None:
        services.producer.close()
        services.idempotency.close()


def _start_services(config: GatewayConfig) -> Services:
    catalogue = load_catalogue(config.contracts_dir)
    keys = KeyRing(config.api_keys)
    for key in config.api_keys:
        unknown = sorted((key.grant.tables or set()) - set(catalogue))
        if unknown:
            logger.warning(
                "api key=%s granted tables without contract=%s", key.name, unknown
            )

    return Services(
        config=config,
        catalogue=catalogue,
        rules={table: ContractRules.of(c) for table, c in catalogue.items()},
        keys=keys,
        registrations=Registrations(connect(config.registry_url, **CLIENT_SETTINGS)),
        producer=ActivityProducer(config.kafka_bootstrap, config.delivery_timeout_s),
        idempotency=IdempotencyStore(
            config.database_url,
            config.idempotency_ttl_s,
            config.delivery_timeout_s + LEASE_MARGIN_S,
            config.threads,
        ),
    )


def _install_hooks(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        g.request_id = request_id_from(request.headers.get("X-Request-Id"))

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id") or "-"
        route = request.url_rule.rule if request.url_rule else "unmatched"
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        return response


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(ProblemError)
    def answer_problem(exc: ProblemError) -> Response:
        problem = exc.problem
        codes = sorted({violation.code for violation in problem.errors})
        logger.info(
            "answered status=%d problem=%s codes=%s",
            problem.status,
            problem.kind.value,
            ",".join(codes) or "-",
        )
        return problem.response(_request_id())

    @app.errorhandler(IdempotencyStoreError)
    def store_unavailable(exc: IdempotencyStoreError) -> Response:
        logger.warning("idempotency store unavailable: %s", exc)
        detail = "the store of Idempotency-Key answers is unreachable; retry later"
        problem = Problem(Kind.IDEMPOTENCY_STORE_UNAVAILABLE, detail)
        return problem.response(_request_id())

    @app.errorhandler(HTTPException)
    def answer_http_error(exc: HTTPException) -> Response:
        return _http_problem(exc)

    @app.errorhandler(Exception)
    def answer_internal_error(exc: Exception) -> Response:
        logger.exception(
            "internal error method=%s path=%s", request.method, request.path
        )
        detail = "the gateway failed; report the request id to its operators"
        return Problem(Kind.INTERNAL_ERROR, detail).response(_request_id())


def _request_id() -> str:
    return g.get("request_id") or request_id_from(None)


def _http_problem(exc: HTTPException) -> Response:
    """Werkzeug's HTTP errors (404, 405, 413, ...) as problem documents."""
    kind = _HTTP_KINDS.get(exc.code or 500)
    if kind is Kind.TOO_LARGE:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        detail = f"the body is larger than the limit of {limit} bytes"
        violation = Violation(
            "",
            "body_too_large",
            detail,
            f"at most {limit} bytes",
            request.content_length,
        )
        response = Problem(kind, detail, [violation]).response(_request_id())
    elif kind is not None:
        response = Problem(kind, exc.description or kind.value).response(_request_id())
    else:
        body = {
            "type": "about:blank",
            "title": exc.name,
            "status": exc.code,
            "detail": exc.description,
            "request_id": _request_id(),
        }
        response = Response(
            json.dumps(body), status=exc.code, mimetype="application/problem+json"
        )
    allow = exc.get_response().headers.get("Allow")
    if allow:
        response.headers["Allow"] = allow
    return response


def _install_routes(app: Flask, services: Services, spec: dict) -> None:
    page = docs_page.render(spec)
    policy = _docs_policy()

    @app.post("/activities")
    def activities() -> Response:
        return post_activities(services, request, g.request_id)

    @app.get("/contracts")
    def contracts() -> Response:
        key = authenticate(services.keys, request.headers.get("Authorization"))
        visible = [
            describe.summary(c)
            for table, c in sorted(services.catalogue.items())
            if key.grant.allows_table(table)
        ]
        return _json({"contracts": visible})

    @app.get("/contracts/<table>")
    def contract(table: str) -> Response:
        return _contract_detail(services, table)

    @app.get("/healthz")
    def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        return _readiness(services)

    @app.get("/metrics")
    def metrics() -> Response:
        text, content_type = exposition()
        return Response(text, content_type=content_type)

    @app.get("/openapi.json")
    def openapi_json() -> Response:
        return _json(spec)

    @app.get("/docs")
    def docs() -> Response:
        response = Response(page, mimetype="text/html")
        response.headers["Content-Security-Policy"] = policy
        return response


def _contract_detail(services: Services, table: str) -> Response:
    """Fields, types, key and registered versions of one contract."""
    key = authenticate(services.keys, request.headers.get("Authorization"))
    if not key.grant.allows_table(table):
        detail = f"API key {key.name!r} may not write table {table!r}"
        raise ProblemError(Problem(Kind.FORBIDDEN, detail))
    contract = services.catalogue.get(table)
    if contract is None:
        raise ProblemError(Problem(Kind.NOT_FOUND, f"table {table!r} has no contract"))

    try:
        registration = services.registrations.get(contract)
        versions = services.registrations.versions(contract)
    except ContractNotRegisteredError as exc:
        raise ProblemError(Problem(Kind.CONTRACT_NOT_REGISTERED, str(exc))) from exc
    except RegistryError as exc:
        detail = "the schema registry did not answer; retry later"
        raise ProblemError(Problem(Kind.REGISTRY_UNAVAILABLE, detail)) from exc

    registered = {
        "version": registration.value.version,
        "schema_id": registration.value.schema_id,
    }
    return _json(describe.detail(contract, registered, versions))


def _readiness(services: Services) -> Response:
    checks = {
        "kafka": "ok" if services.producer.is_reachable() else "unreachable",
        "registry": "ok" if services.registrations.is_reachable() else "unreachable",
    }
    if all(state == "ok" for state in checks.values()):
        return _json({"status": "ready", "checks": checks})

    logger.warning("not ready checks=%s", checks)
    detail = "not ready: " + ", ".join(k for k, v in checks.items() if v != "ok")
    raise ProblemError(Problem(Kind.NOT_READY, detail, extra={"checks": checks}))


def _json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _docs_policy() -> str:
    """Allow the page's own inline script and style, and nothing from elsewhere."""
    digest = hashlib.sha256(docs_page.SCRIPT.encode("utf-8")).digest()
    script = "sha256-" + base64.b64encode(digest).decode("ascii")
    return (
        f"default-src 'none'; script-src '{script}'; style-src 'unsafe-inline'; "
        "img-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'"
    )
