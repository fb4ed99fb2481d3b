"""Retrying transient failures: exponential backoff with jitter, until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import tenacity

from worker import metrics
from worker.errors import TransientError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# First wait and ceiling, in seconds: a blip costs half a second, an outage is
# probed every half minute at most.
INITIAL_WAIT_S = 0.5
MAX_WAIT_S = 30.0


def retrying(stop: threading.Event, call: Callable[[], T], what: str) -> T:
    """Call until it succeeds; between TransientErrors wait longer and longer.

    Setting ``stop`` ends the waiting at once and re-raises the last error, so a
    stop request is never held up by an outage.
    """

    def log_retry(state: tenacity.RetryCallState) -> None:
        metrics.RETRIES.inc()
        logger.warning(
            "%s failed, retrying in %.1f s attempt=%d: %s",
            what,
            state.upcoming_sleep,
            state.attempt_number,
            state.outcome.exception(),
        )

    retryer = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TransientError),
        wait=tenacity.wait_exponential(multiplier=INITIAL_WAIT_S, max=MAX_WAIT_S)
        + tenacity.wait_random(0, INITIAL_WAIT_S),
        stop=lambda _: stop.is_set(),
        sleep=stop.wait,
        before_sleep=log_retry,
        reraise=True,
    )
    return retryer(call)
