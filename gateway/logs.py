"""Structured logs: key=value lines, each carrying the request id it belongs to.

The request id is the client's ``X-Request-Id`` when it sent a usable one, else a
fresh one; it is echoed in the answer, logged with every line written while the
request is handled, and sent to Kafka as the ``gk-request-id`` header.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from flask import g, has_request_context

LOG_FORMAT = (
    "%(asctime)s level=%(levelname)s logger=%(name)s process=%(process)d "
    "request_id=%(request_id)s %(message)s"
)

# gunicorn's access log, in the same key=value style; never a request header,
# so never the Authorization header. RequestIdFilter adds the request id.
ACCESS_LOG_FORMAT = (
    'remote=%(h)s method=%(m)s path="%(U)s" status=%(s)s bytes=%(B)s duration_ms=%(M)s'
)
# gunicorn hands the access log its atoms; this one is the X-Request-Id answered.
_ACCESS_REQUEST_ID = "{x-request-id}o"

# What a client may choose as request id: short, and safe to log and to echo.
_USABLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id_from(header: str | None) -> str:
    """The client's request id if it is usable, else a new one."""
    if header and _USABLE_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Give every record a ``request_id``: the current request's, or ``-``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "request_id"):
            return True

        request_id = "-"
        if has_request_context():
            request_id = g.get("request_id", "-")
        elif record.name == "gunicorn.access" and isinstance(record.args, dict):
            request_id = record.args.get(_ACCESS_REQUEST_ID, "-")
        record.request_id = request_id
        return True


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for gunicorn and the gateway's own loggers."""
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "keyvalue",
        "filters": ["request_id"],
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"keyvalue": {"format": LOG_FORMAT}},
        "handlers": {"stderr": handler},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "propagate": True},
            "gunicorn.access": {"level": level, "propagate": True},
            # The registry client logs every HTTP request at INFO.
            "httpx": {"level": "WARNING"},
            "httpx2": {"level": "WARNING"},
        },
    }
