"""The worker's PostgreSQL connection, and how its errors are told apart.

Errors are classified by SQLSTATE class, never by message text: a record's own
fault (a constraint, a bad value) is rejected alone; anything else (connection
lost, serialization failure, server shutting down) is retried with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extras
from psycopg2.extensions import connection, cursor

from worker.errors import TransientError
from worker.records import RejectCode

logger = logging.getLogger(__name__)

APPLICATION_NAME = "gatekeeper-worker"

# SQLSTATE classes that mean "this record cannot be written", and the reject code
# each becomes. Every other class is a condition of the server, worth a retry.
RECORD_ERROR_CLASSES: dict[str, RejectCode] = {
    "21": RejectCode.INVALID_VALUE,  # cardinality violation
    "22": RejectCode.INVALID_VALUE,  # data exception: out of range, bad encoding
    "23": RejectCode.CONSTRAINT_VIOLATION,  # not null, unique, check, foreign key
    "42": RejectCode.TABLE_MISMATCH,  # the table no longer has a column, or a right
}


def record_error_code(exc: psycopg2.Error) -> RejectCode | None:
    """The reject code for an error a record caused, or None for a transient one."""
    if exc.pgcode is None:
        return None
    return RECORD_ERROR_CLASSES.get(exc.pgcode[:2])


def describe_error(exc: psycopg2.Error) -> str:
    """``ClassName (SQLSTATE): primary message``, for rejects and logs."""
    message = exc.diag.message_primary if exc.diag else None
    detail = exc.diag.message_detail if exc.diag else None
    text = f"{type(exc).__name__} ({exc.pgcode}): {message or str(exc).strip()}"
    return f"{text} ({detail})" if detail else text


class Database:
    """One connection, opened on first use and again after it was lost.

    ``generation`` grows with every new connection, so that per-session state
    (temporary tables) can tell it must be made again.
    """

    def __init__(self, url: str, application_name: str = APPLICATION_NAME) -> None:
        self._url = url
        self._application_name = application_name
        self._conn: connection | None = None
        self.generation = 0

    def __repr__(self) -> str:
        state = "open" if self._conn is not None and not self._conn.closed else "closed"
        return f"<Database generation={self.generation} {state}>"

    @property
    def conn(self) -> connection:
        if self._conn is None or self._conn.closed:
            self._connect()
        return self._conn

    def _connect(self) -> None:
        try:
            self._conn = psycopg2.connect(
                self._url, application_name=self._application_name
            )
        except psycopg2.OperationalError as exc:
            raise TransientError(f"cannot connect to PostgreSQL: {exc}") from exc
        psycopg2.extras.register_uuid(conn_or_curs=self._conn)
        self.generation += 1
        logger.info("connected to PostgreSQL generation=%d", self.generation)

    @contextmanager
    def transaction(self) -> Iterator[cursor]:
        """A cursor in a transaction, committed on success and rolled back on error.

        A PostgreSQL error that escapes it becomes a TransientError: record errors
        are handled inside, so what escapes is a condition of the server. A lost
        connection is dropped, to be opened again on the next use.
        """
        conn = self.conn
        try:
            with conn, conn.cursor() as cur:
                yield cur
        except psycopg2.Error as exc:
            if conn.closed:
                self._conn = None
            raise TransientError(f"PostgreSQL: {describe_error(exc)}") from exc

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None
