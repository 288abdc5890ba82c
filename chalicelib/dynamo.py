"""The DynamoDB edge shared by every table: model settings, the model registry, error translation.

The PynamoDB models are the single definition of every table: `infra/template.py` turns them into
CloudFormation, and the local stack creates its tables from that same CloudFormation, so the two
cannot drift.
"""

from __future__ import annotations

import importlib
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.connection import Connection
from pynamodb.constants import PAY_PER_REQUEST_BILLING_MODE
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.models import Model

from chalicelib import deadline
from chalicelib.errors import StorageUnavailable
from chalicelib.settings import Settings, resource_name, settings

# Modules that define tables; importing them registers their models.
TABLE_MODULES = (
    "chalicelib.callbacks.tables",
    "chalicelib.rewards.tables",
    "chalicelib.reconcile.tables",
    "chalicelib.audit.tables",
    "chalicelib.play.tables",
    "chalicelib.live.tables",
)

# Runs of one storage operation by `with_retries` (each a botocore call of `RG_AWS_MAX_ATTEMPTS` attempts).
ATTEMPTS = 6

_REGISTRY: list[type[Model]] = []
_connection: Connection | None = None

M = TypeVar("M", bound=type[Model])
T = TypeVar("T")


def meta(logical_name: str, ttl_attribute: str | None = None) -> type:
    """A PynamoDB `Meta` for table `logical_name` (physical name `rewardgate-{stage}-{logical}`).

    The endpoint is not set here: botocore reads `AWS_ENDPOINT_URL_DYNAMODB` when the connection is
    first used, which is how tests and the local stack reach DynamoDB Local.
    """

    class Meta:
        table_name = resource_name(logical_name)
        region = settings().region
        billing_mode = PAY_PER_REQUEST_BILLING_MODE
        max_pool_connections = 64

    # One call, botocore's retries included, stays well inside any caller's deadline
    # (docs/explanation/timeouts.md); `with_retries` is the retry policy on top.
    for name, value in connection_options().items():
        setattr(Meta, name, value)
    Meta.logical_name = logical_name  # type: ignore[attr-defined]
    Meta.ttl_attribute = ttl_attribute  # type: ignore[attr-defined]
    return Meta


def table(model: M) -> M:
    """Class decorator: register a model as one of rewardgate's tables."""
    _REGISTRY.append(model)
    return model


def all_models() -> list[type[Model]]:
    """Every registered table model, in a stable order."""
    for name in TABLE_MODULES:
        importlib.import_module(name)
    return sorted(_REGISTRY, key=lambda m: m.Meta.logical_name)  # type: ignore[attr-defined]


def connection() -> Connection:
    """The PynamoDB connection transactions run on (built on first use, like the models' own)."""
    global _connection
    if _connection is None:
        _connection = new_connection()
    return _connection


def connection_options(s: Settings | None = None) -> dict[str, int]:
    """Timeouts and botocore attempts of every DynamoDB connection (PynamoDB: total = 1 + max_retry_attempts,
    in botocore's standard mode); docs/explanation/timeouts.md."""
    s = s or settings()
    return {"connect_timeout_seconds": s.aws_connect_timeout_s, "read_timeout_seconds": s.aws_read_timeout_s,
            "max_retry_attempts": s.aws_max_attempts - 1}


def new_connection(s: Settings | None = None) -> Connection:
    """A new PynamoDB connection with the table models' timeouts and attempts."""
    s = s or settings()
    return Connection(region=s.region, max_pool_connections=64, **connection_options(s))


# --- error translation -----------------------------------------------------------------------

TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
        "TransactionConflict",
        "TransactionConflictException",
        "ThrottlingError",
    }
)


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (PynamoDB's `.cause` and Python's `__cause__`)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = getattr(current, "cause", None) or current.__cause__
    return chain


def _client_error(exc: BaseException) -> ClientError | None:
    return next((c for c in _causes(exc) if isinstance(c, ClientError)), None)


def error_code(exc: BaseException) -> str | None:
    """The AWS error code behind a PynamoDB/botocore exception, if any.

    Read from the `ClientError` in the cause chain only: PynamoDB's own `cause_response_code` assumes its cause
    has a response, and a transport fault (`ReadTimeoutError`, `response=None`) has none.
    """
    found = _client_error(exc)
    if found is None:
        return None
    return ((found.response or {}).get("Error") or {}).get("Code")


def cancellation_codes(exc: TransactWriteError) -> list[str | None]:
    """Per-item cancellation codes of a cancelled transaction, in request order.

    PynamoDB sends condition checks, then deletes, then puts, then updates; callers index this list
    in that order. `None` (or "None") means the item was not a reason for the cancellation.
    """
    reasons = exc.cancellation_reasons or []
    return [None if r is None or r.code in (None, "None") else r.code for r in reasons]


def is_transient(exc: BaseException) -> bool:
    """True when a retry of the same request may succeed (throttling, conflicts, 5xx, network)."""
    if isinstance(exc, TransactWriteError):
        codes = cancellation_codes(exc)
        if codes and all(c in (None, "TransactionConflict", "ThrottlingError") for c in codes):
            return any(c is not None for c in codes)
    code = error_code(exc)
    if code in TRANSIENT_CODES:
        return True
    # No answer at all (timeout, connection reset) surfaces as a botocore transport error. PynamoDB's
    # own DoesNotExist also has no code, but it is an answer, not a fault.
    return code is None and any(isinstance(c, BotoCoreError) for c in _causes(exc))


def with_retries(operation: Callable[[], T], attempts: int = ATTEMPTS, base_delay_s: float = 0.02) -> T:
    """Run `operation`, retrying transient DynamoDB failures with full-jitter exponential backoff.

    The one retry policy of every storage call: at most `attempts` runs (each one botocore call of at most
    `RG_AWS_MAX_ATTEMPTS` attempts), and none started after the current deadline (`chalicelib.deadline`):
    when the deadline has passed, or the next backoff would cross it, `DeadlineExceeded` (a
    `StorageUnavailable`) is raised instead. A transient failure that survives every attempt becomes
    `StorageUnavailable`; any other error propagates unchanged for the caller to translate.
    """
    for attempt in range(attempts):
        if deadline.expired():
            raise deadline.DeadlineExceeded("deadline reached before the database answered", attempts=attempt)
        try:
            return operation()
        except (PynamoDBException, BotoCoreError, ClientError) as exc:
            if not is_transient(exc):
                raise
            if attempt == attempts - 1:
                raise StorageUnavailable("database unavailable after retries", cause=error_code(exc)) from exc
            delay = random.uniform(0, base_delay_s * (2**attempt))
            if not deadline.allows_sleep(delay):
                raise deadline.DeadlineExceeded("deadline reached before the database answered",
                                                attempts=attempt + 1, cause=error_code(exc)) from exc
            time.sleep(delay)
    raise AssertionError("unreachable")


def raw_value(value: Any) -> Any:
    """Decode one DynamoDB wire value (`{"S": ...}`, `{"N": ...}`) into Python (ints stay ints)."""
    (kind, data), = value.items()
    if kind == "S":
        return data
    if kind == "N":
        return int(data) if data.lstrip("-").isdigit() else float(data)
    if kind == "BOOL":
        return data
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: raw_value(v) for k, v in data.items()}
    if kind == "L":
        return [raw_value(v) for v in data]
    return data


def raw_item(item: dict[str, Any] | None) -> dict[str, Any]:
    """Decode a DynamoDB wire item (as returned in cancellation reasons) into a plain dict."""
    return {k: raw_value(v) for k, v in (item or {}).items()}
