"""The project's exception hierarchy, shared by the gateway, the worker and the tools."""

from __future__ import annotations


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
