"""The project's exceptions, shared by the gateway, the worker and the tools."""

from __future__ import annotations

import json


class GatekeeperError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigurationError(GatekeeperError):
    """A setting is missing, malformed or unknown; the message names the variable."""


class ContractError(GatekeeperError):
    """A contract file is unreadable or breaks the contract rules.

    ``path`` names the file, so the operator knows which contract to fix.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class RegistryError(GatekeeperError):
    """The schema registry refused a request or could not be reached.

    ``status`` is the HTTP status (None when unreachable) and ``error_code`` the
    registry's own error code, when it sent one.
    """

    def __init__(
        self, message: str, status: int | None = None, error_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class UnknownSqlTypeError(GatekeeperError):
    """A declared column type is not a SQL type the gateway knows how to compare.

    ``given`` is the declaration as the sender wrote it, so the reply can quote it.
    """

    def __init__(self, given: object, reason: str | None = None) -> None:
        message = f"unknown SQL type {given!r}"
        super().__init__(f"{message}: {reason}" if reason else message)
        self.given = given


class ConversionError(GatekeeperError):
    """A JSON value cannot become the Avro datum its contract field calls for.

    ``code`` is stable, for clients to act on; ``expected`` completes the phrase
    "must be ..."; ``given`` is the value as sent. The message is a lowercase
    fragment, so the caller can put the column name in front of it.
    """

    def __init__(self, code: str, expected: str, given: object) -> None:
        super().__init__(f"must be {expected}, not {_quote(given)}")
        self.code = code
        self.expected = expected
        self.given = given


# Values are echoed back to whoever sent them; a megabyte string is no help there.
_QUOTE_LIMIT = 60


def _quote(value: object) -> str:
    """Show a value the way the sender wrote it: as JSON, ASCII only, cut short."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) <= _QUOTE_LIMIT:
        return text
    return text[: _QUOTE_LIMIT - 3] + "..."
