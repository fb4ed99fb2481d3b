"""``Idempotency-Key``: a retried request gets the first answer instead of a copy.

The answers live in PostgreSQL, in ``gatekeeper.idempotency_keys``, so that every
gateway process and every gateway machine behind a load balancer sees the same
keys. A key belongs to the API key that used it: two clients never share one.

The life of a key:

1. ``claim`` inserts it as *pending*, atomically: of two concurrent requests
   with one key, one proceeds and the other is told the key is in use (409);
2. ``complete`` stores the 202 answer, kept for ``ttl_s`` seconds (default one
   day) and then removed by later claims;
3. ``release`` removes a pending claim whose request produced nothing (a
   rejected request) or whose outcome is unknown (a 503), so that a retry runs
   again.

A claim left pending by a process that died is taken over once its lease ends,
``lease_s`` after it was made. The database is used only by requests that carry
the header; without it, nothing here runs.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.pool

from contracts.errors import GatekeeperError

logger = logging.getLogger(__name__)

TABLE_DDL = """
CREATE SCHEMA IF NOT EXISTS gatekeeper;
CREATE TABLE IF NOT EXISTS gatekeeper.idempotency_keys (
    principal text NOT NULL,
    idempotency_key text NOT NULL,
    fingerprint bytea NOT NULL,
    state text NOT NULL CHECK (state IN ('pending', 'done')),
    status integer,
    body text,
    lease_until timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, idempotency_key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_expiry
    ON gatekeeper.idempotency_keys (expires_at);
"""

# Claim the key, or take over one that expired or whose pending lease ran out.
CLAIM_SQL = """
INSERT INTO gatekeeper.idempotency_keys AS k
    (principal, idempotency_key, fingerprint, state, lease_until, expires_at)
VALUES (%(principal)s, %(key)s, %(fingerprint)s, 'pending',
        now() + %(lease)s * interval '1 second',
        now() + %(ttl)s * interval '1 second')
ON CONFLICT (principal, idempotency_key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, state = 'pending', status = NULL,
        body = NULL, lease_until = EXCLUDED.lease_until,
        expires_at = EXCLUDED.expires_at, created_at = now()
    WHERE k.expires_at < now() OR (k.state = 'pending' AND k.lease_until < now())
RETURNING true
"""

FIND_SQL = """
SELECT fingerprint, state, status, body FROM gatekeeper.idempotency_keys
WHERE principal = %s AND idempotency_key = %s
"""

COMPLETE_SQL = """
UPDATE gatekeeper.idempotency_keys
SET state = 'done', status = %s, body = %s,
    expires_at = now() + %s * interval '1 second'
WHERE principal = %s AND idempotency_key = %s AND state = 'pending'
"""

RELEASE_SQL = """
DELETE FROM gatekeeper.idempotency_keys
WHERE principal = %s AND idempotency_key = %s AND state = 'pending'
"""

# Expired answers are removed a batch at a time, at most once a minute per process.
PURGE_SQL = """
DELETE FROM gatekeeper.idempotency_keys WHERE ctid IN (
    SELECT ctid FROM gatekeeper.idempotency_keys WHERE expires_at < now() LIMIT 500)
"""
PURGE_EVERY_S = 60.0

CONNECT_TIMEOUT_S = 3
# The worker takes the same lock for its DDL; concurrent CREATE ... IF NOT EXISTS
# can otherwise fail on the catalog's unique index.
DDL_LOCK = "SELECT pg_advisory_xact_lock(hashtext('gatekeeper.ddl'))"


# Errors after which a connection is closed rather than handed out again.
DISCONNECTED = (psycopg2.OperationalError, psycopg2.InterfaceError)


class IdempotencyStoreError(GatekeeperError):
    """The database holding Idempotency-Key answers cannot be reached or used."""


class ClaimState(enum.StrEnum):
    CLAIMED = "claimed"
    IN_PROGRESS = "in progress"
    REPLAY = "replay"
    MISMATCH = "mismatch"


@dataclass(frozen=True)
class Claim:
    """What ``claim`` found: go ahead, wait, replay an answer, or refuse."""

    state: ClaimState
    principal: str
    key: str
    status: int | None = None
    body: str | None = None


def fingerprint(payload: Any) -> bytes:
    """The request's identity: its JSON, whatever the spacing and member order."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).digest()


class IdempotencyStore:
    """Keys and answers in PostgreSQL, shared by every gateway process."""

    def __init__(
        self, database_url: str, ttl_s: float, lease_s: float, max_connections: int
    ) -> None:
        self._url = database_url
        self._ttl_s = ttl_s
        self._lease_s = lease_s
        self._max_connections = max_connections
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._lock = threading.Lock()
        self._next_purge = 0.0

    def __repr__(self) -> str:
        return f"<IdempotencyStore ttl={self._ttl_s}s lease={self._lease_s}s>"

    def claim(self, principal: str, key: str, payload: Any) -> Claim:
        """Claim ``key`` for this request, or say why it cannot be claimed."""
        mark = fingerprint(payload)
        parameters = {
            "principal": principal,
            "key": key,
            "fingerprint": mark,
            "lease": self._lease_s,
            "ttl": self._ttl_s,
        }
        with self._cursor() as cur:
            self._purge_now_and_then(cur)
            cur.execute(CLAIM_SQL, parameters)
            if cur.fetchone() is not None:
                return Claim(ClaimState.CLAIMED, principal, key)
            cur.execute(FIND_SQL, (principal, key))
            row = cur.fetchone()
        return _existing(principal, key, mark, row)

    def complete(self, claim: Claim, status: int, body: str) -> None:
        """Keep the answer for ``ttl_s`` seconds."""
        with self._cursor() as cur:
            cur.execute(
                COMPLETE_SQL, (status, body, self._ttl_s, claim.principal, claim.key)
            )

    def release(self, claim: Claim) -> None:
        """Forget a pending claim, so that a retry runs the request again."""
        with self._cursor() as cur:
            cur.execute(RELEASE_SQL, (claim.principal, claim.key))

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.closeall()
                self._pool = None

    def _purge_now_and_then(self, cur) -> None:
        if time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + PURGE_EVERY_S
        cur.execute(PURGE_SQL)
        if cur.rowcount:
            logger.info("removed expired idempotency keys=%d", cur.rowcount)

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A cursor in a transaction committed on success.

        A connection that failed is closed rather than returned to the pool; any
        PostgreSQL failure becomes IdempotencyStoreError.
        """
        pool = self._connect()
        try:
            conn = pool.getconn()
        except (psycopg2.Error, psycopg2.pool.PoolError) as exc:
            raise IdempotencyStoreError(f"no database connection: {exc}") from exc

        broken = False
        try:
            with conn, conn.cursor() as cur:
                yield cur
        except psycopg2.Error as exc:
            broken = isinstance(exc, DISCONNECTED)
            raise IdempotencyStoreError(f"idempotency store failed: {exc}") from exc
        finally:
            pool.putconn(conn, close=broken or bool(conn.closed))

    def _connect(self) -> psycopg2.pool.ThreadedConnectionPool:
        """The pool, created and the table ensured on first use in this process."""
        with self._lock:
            if self._pool is not None:
                return self._pool
            try:
                pool = psycopg2.pool.ThreadedConnectionPool(
                    1,
                    self._max_connections,
                    self._url,
                    connect_timeout=CONNECT_TIMEOUT_S,
                    application_name="gatekeeper-gateway",
                )
                _ensure_table(pool)
            except psycopg2.Error as exc:
                message = f"cannot reach the database: {exc}"
                raise IdempotencyStoreError(message) from exc
            self._pool = pool
            return pool


def _ensure_table(pool: psycopg2.pool.ThreadedConnectionPool) -> None:
    conn = pool.getconn()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(DDL_LOCK)
            cur.execute(TABLE_DDL)
    finally:
        pool.putconn(conn)


def _existing(principal: str, key: str, mark: bytes, row: tuple | None) -> Claim:
    """Decide from the row that kept the claim from being made."""
    if row is None:
        # Released between the two statements: the other request is finishing.
        return Claim(ClaimState.IN_PROGRESS, principal, key)

    stored_mark, state, status, body = row
    if bytes(stored_mark) != mark:
        return Claim(ClaimState.MISMATCH, principal, key)
    if state == "pending":
        return Claim(ClaimState.IN_PROGRESS, principal, key)
    return Claim(ClaimState.REPLAY, principal, key, status, body)
