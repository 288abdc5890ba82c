"""The deadline of the work in progress: one request, one worker batch, one scheduled run.

Every retry stops at this deadline. It is set once per unit of work from the Lambda's remaining time
(`context.get_remaining_time_in_millis()`), capped for requests by API Gateway's limit
(`RG_REQUEST_LIMIT_S`, 29 s), minus a margin that covers one more call to a backing service
(`call_bound_s()`) and the answer. So the last attempt that starts before the deadline ends before the
caller's own limit, and a request is answered `503` (retry later) instead of being cut by API Gateway
(`504`), a worker reports its unfinished records instead of being killed by its timeout.

The deadline lives in a context variable holding an absolute `time.monotonic()` instant: each request
or batch has its own, threads started without copying the context see none (no deadline: only the
attempt count bounds their retries).
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from chalicelib.errors import StorageUnavailable
from chalicelib.settings import settings

T = TypeVar("T")

# Time left for answering (or reporting a batch's failures) after the last call has returned.
ANSWER_ALLOWANCE_S = 0.5


_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("rg_deadline", default=None)


def _now() -> float:
    return time.monotonic()  # looked up at each call, so a test's simulated clock applies


class DeadlineExceeded(StorageUnavailable):
    """The database did not answer before the work's deadline; a retry later may succeed.

    Callers see the same retryable `503 storage_unavailable` as for any storage failure; the log says
    that the deadline, not the attempt count, ended the retries.
    """

    @classmethod
    def title(cls) -> str:
        """The problem title of `storage_unavailable` (one answer for every retryable storage failure)."""
        return StorageUnavailable.title()


def call_bound_s() -> float:
    """Longest one call to DynamoDB, SQS or Secrets Manager can take, botocore's own retries included.

    Each botocore attempt is bounded by the connect and read timeouts; standard mode sleeps at most
    2**(i-1) s before its i-th retry.
    """
    s = settings()
    attempts = s.aws_max_attempts
    return attempts * (s.aws_connect_timeout_s + s.aws_read_timeout_s) + (2 ** (attempts - 1) - 1)


def margin_s() -> float:
    """What the deadline keeps back from the caller's limit: one more call, and the answer."""
    return call_bound_s() + ANSWER_ALLOWANCE_S


def budget_s(context: Any, limit_s: float | None = None) -> float | None:
    """Seconds the work may spend retrying: min(Lambda's remaining time, `limit_s`) minus the margin.

    The margin takes at most half of that time: a function shorter than two margins (the 10 s callback
    function) still works, retrying for half its time; there, a call that hangs to its last timeout can
    outlast the function (its caller retries). None when neither a Lambda context nor a limit is known
    (no deadline).
    """
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    candidates = [remaining() / 1000] if callable(remaining) else []
    if limit_s is not None:
        candidates.append(limit_s)
    if not candidates:
        return None
    limit = max(0.0, min(candidates))
    return max(limit - margin_s(), limit / 2)


@contextmanager
def bounded(context: Any, limit_s: float | None = None) -> Iterator[float | None]:
    """Run the enclosed work under the deadline `budget_s(context, limit_s)` from now; yields the budget."""
    budget = budget_s(context, limit_s)
    token = _deadline.set(None if budget is None else _now() + budget)
    try:
        yield budget
    finally:
        _deadline.reset(token)


def request_bounded(request: Any) -> Any:
    """The deadline of an API request (a context manager): the Lambda's remaining time and `RG_REQUEST_LIMIT_S`."""
    return bounded(getattr(request, "lambda_context", None), settings().request_limit_s)


def remaining_s() -> float:
    """Seconds until the current deadline (negative once passed; infinite when there is none)."""
    deadline = _deadline.get()
    return math.inf if deadline is None else deadline - _now()


def expired() -> bool:
    """True once the current deadline has passed."""
    return remaining_s() <= 0


def carried(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn`, run under the current deadline in whichever thread calls it (a new thread starts without one)."""
    value = _deadline.get()

    def run(*args: Any, **kwargs: Any) -> T:
        token = _deadline.set(value)
        try:
            return fn(*args, **kwargs)
        finally:
            _deadline.reset(token)

    return run


def allows_sleep(delay_s: float) -> bool:
    """True when sleeping `delay_s` still ends before the deadline (so another attempt may start)."""
    return delay_s < remaining_s()
