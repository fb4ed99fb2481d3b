"""The worker's errors: what is retried, what is rejected, what rolls a batch back."""

from __future__ import annotations

from contracts.errors import GatekeeperError


class WorkerError(GatekeeperError):
    """Base class of the errors the worker raises on purpose."""


class RecordRejectedError(WorkerError):
    """One record cannot be applied; it goes to the rejects and the dead-letter topic.

    ``code`` is a stable ``RejectCode``; the message says what was wrong with the
    record and, where there is one, what would fix it.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class TransientError(WorkerError):
    """A server is unreachable or busy; the work is retried with backoff, never lost."""


class OffsetConflictError(WorkerError):
    """Another worker advanced a partition this one believed it owned."""
