"""API keys: bearer tokens, each granted a set of tables and operations.

Keys are configured as JSON, in a file named by ``GATEKEEPER_API_KEYS_FILE`` or
inline in ``GATEKEEPER_API_KEYS`` (one of the two)::

    {"keys": [
      {"name": "orders-service", "token_sha256": "<64 hex digits>",
       "tables": ["orders"], "operations": ["insert", "upsert"]},
      {"name": "local", "token": "<at least 32 characters>",
       "tables": ["*"], "operations": ["*"]}
    ]}

A key gives either its token's SHA-256 (the file then holds no secret) or the
token itself. Only the SHA-256 of a token is kept in memory, and a presented token
is compared with every key's digest in constant time (``hmac.compare_digest``), so
neither the answer's timing nor the logs reveal a token. Logs name keys by
``name`` alone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.errors import ConfigurationError
from gateway.validation import Operation

logger = logging.getLogger(__name__)

KEYS_FILE_ENV = "GATEKEEPER_API_KEYS_FILE"
KEYS_ENV = "GATEKEEPER_API_KEYS"
EVERYTHING = "*"

# A token shorter than this is guessable; generated ones have 43 characters.
MIN_TOKEN_LENGTH = 32
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_KEY_MEMBERS = frozenset({"name", "token", "token_sha256", "tables", "operations"})


@dataclass(frozen=True)
class Grant:
    """What a key may do: ``None`` stands for every table or every operation."""

    tables: frozenset[str] | None
    operations: frozenset[Operation] | None

    def allows_table(self, table: str) -> bool:
        return self.tables is None or table in self.tables

    def allows_operation(self, operation: Operation) -> bool:
        return self.operations is None or operation in self.operations


@dataclass(frozen=True)
class ApiKey:
    """One configured key: its name for logs and grants, and its token's digest."""

    name: str
    digest: bytes = field(repr=False)
    grant: Grant


class KeyRing:
    """The configured keys, answering "whose token is this?"."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys = tuple(keys)

    def __repr__(self) -> str:
        return f"<KeyRing keys={[key.name for key in self._keys]}>"

    def authenticate(self, authorization: str | None) -> ApiKey | None:
        """The key whose token the ``Authorization: Bearer`` header carries, if any.

        Every key is compared, matched or not, so that the time taken says
        nothing about which key, or which prefix of a token, came close.
        """
        token = bearer_token(authorization)
        if token is None:
            return None

        presented = _digest(token)
        found = None
        for key in self._keys:
            if hmac.compare_digest(presented, key.digest):
                found = key
        return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (RFC 6750)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def new_token() -> str:
    """A fresh random token, for ``make up`` and for people creating keys."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The ``token_sha256`` to write in a keys file for ``token``."""
    return _digest(token).hex()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


# --- configuration ------------------------------------------------------------


def keys_from_environment(environ: Mapping[str, str]) -> tuple[ApiKey, ...]:
    """The keys of ``GATEKEEPER_API_KEYS_FILE`` or ``GATEKEEPER_API_KEYS``.

    Raise ConfigurationError naming the variable when both are set, the file is
    unreadable or its content breaks the format in the module docstring.
    """
    path, inline = environ.get(KEYS_FILE_ENV), environ.get(KEYS_ENV)
    if path and inline:
        raise ConfigurationError(f"set {KEYS_FILE_ENV} or {KEYS_ENV}, not both")
    if inline:
        return parse_keys(inline, KEYS_ENV)
    if not path:
        return ()

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"{KEYS_FILE_ENV}: cannot read {path}: {exc}") from exc
    return parse_keys(text, f"{KEYS_FILE_ENV} ({path})")


def parse_keys(text: str, source: str) -> tuple[ApiKey, ...]:
    """Read a keys document; ``source`` names it in errors."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{source} is not valid JSON: {exc}") from None

    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError(f'{source} must be {{"keys": [...]}} with one key')

    keys = [_parse_key(e, f"{source}: keys[{i}]") for i, e in enumerate(entries)]
    _check_unique(keys, source)
    return tuple(keys)


def _parse_key(entry: Any, where: str) -> ApiKey:
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where} must be an object")
    unknown = sorted(set(entry) - _KEY_MEMBERS)
    if unknown:
        raise ConfigurationError(f"{where} has unknown members: {', '.join(unknown)}")

    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"{where} needs a name")
    where = f"{where} ({name})"

    return ApiKey(
        name,
        _parse_digest(entry, where),
        Grant(
            _parse_tables(entry.get("tables"), where),
            _parse_operations(entry.get("operations"), where),
        ),
    )


def _parse_digest(entry: Mapping[str, Any], where: str) -> bytes:
    token, digest = entry.get("token"), entry.get("token_sha256")
    if (token is None) == (digest is None):
        raise ConfigurationError(f"{where} needs exactly one of token, token_sha256")

    if digest is not None:
        if not isinstance(digest, str) or not _HEX_DIGEST.fullmatch(digest):
            raise ConfigurationError(f"{where}: token_sha256 must be 64 hex digits")
        return bytes.fromhex(digest)

    if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
        raise ConfigurationError(
            f"{where}: token must have at least {MIN_TOKEN_LENGTH} characters"
        )
    return _digest(token)


def _parse_tables(value: Any, where: str) -> frozenset[str] | None:
    names = _string_list(value, "tables", where)
    if EVERYTHING in names:
        return None
    return frozenset(names)


def _parse_operations(value: Any, where: str) -> frozenset[Operation] | None:
    names = _string_list(value, "operations", where)
    if EVERYTHING in names:
        return None

    allowed = {operation.value for operation in Operation}
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown operations {', '.join(unknown)}; use "
            f"{', '.join(sorted(allowed))} or {EVERYTHING}"
        )
    return frozenset(Operation(name) for name in names)


def _string_list(value: Any, member: str, where: str) -> list[str]:
    valid = isinstance(value, list) and value
    if not valid or not all(isinstance(item, str) for item in value):
        raise ConfigurationError(
            f'{where}: {member} must be a non-empty list of names, or ["*"]'
        )
    return value


def _check_unique(keys: list[ApiKey], source: str) -> None:
    names = [key.name for key in keys]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigurationError(f"{source}: key names repeated: {', '.join(repeated)}")

    digests = [key.digest for key in keys]
    if len(set(digests)) != len(digests):
        raise ConfigurationError(f"{source}: two keys share one token")


def local_keys_document(token: str) -> str:
    """A keys file granting ``token`` everything, as ``make up`` writes it."""
    key = {
        "name": "local",
        "token_sha256": token_digest(token),
        "tables": [EVERYTHING],
        "operations": [EVERYTHING],
    }
    return json.dumps({"keys": [key]}, indent=2) + "\n"
