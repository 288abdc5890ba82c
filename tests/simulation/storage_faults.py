"""Indeterminate outcomes at every DynamoDB write, injected once at the boundary every write passes through.

Every DynamoDB call rewardgate makes — boto3 clients from `chalicelib.clients` and PynamoDB's connections alike
— goes through `botocore.client.BaseClient._make_api_call`, after which botocore has done its own retries. The
injector wraps that one method: when armed, the k-th write (PutItem, UpdateItem, DeleteItem, TransactWriteItems,
BatchWriteItem) of the action gets one of these outcomes, raised as the errors the real service gives:

- `timeout_landed`: the write lands, its answer is lost (`InternalServerError`, or with `read_timeouts` botocore's
  `ReadTimeoutError`); retries run normally;
- `timeout_landed_sticky`: the write lands, its answer is lost, and every retry of the same request (same
  operation and parameters) is throttled until the action ends (`ProvisionedThroughputExceededException`
  after botocore's attempts), so the caller gives up not knowing;
- `deadline_landed`: the write lands, its answer is lost, and the unit of work's deadline has passed
  (`chalicelib.deadline`): the caller's next retry is `DeadlineExceeded`;
- `throttled_sticky`: the write does not land and neither does any retry of it (throttled until the action ends).

Only the simulation's own thread is faulted (races run clean), so the choices stay the seed's.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})
MODES = ("timeout_landed", "timeout_landed_sticky", "deadline_landed", "throttled_sticky")


def _throttled(operation: str) -> Exception:
    from botocore.exceptions import ClientError

    code = "ThrottlingException" if operation == "TransactWriteItems" else "ProvisionedThroughputExceededException"
    return ClientError({"Error": {"Code": code, "Message": "simulated: rate of requests exceeds the throughput"},
                        "ResponseMetadata": {"HTTPStatusCode": 400, "RetryAttempts": 2}}, operation)


def _lost_answer(operation: str, read_timeout: bool) -> Exception:
    """The error a caller sees when its write's answer is lost: botocore's `ReadTimeoutError` (as urllib3's
    read timeout surfaces, `response=None`), or DynamoDB's `InternalServerError` ("the operation may or may
    not have succeeded")."""
    from botocore.exceptions import ClientError, ReadTimeoutError

    if read_timeout:
        return ReadTimeoutError(endpoint_url="https://dynamodb.simulated.amazonaws.com", error="read timed out")
    return ClientError({"Error": {"Code": "InternalServerError", "Message": "simulated: internal server error"},
                        "ResponseMetadata": {"HTTPStatusCode": 500, "RetryAttempts": 2}}, operation)


@dataclass(frozen=True)
class _Hold:
    reached: threading.Event
    release: threading.Event


def _fingerprint(operation: str, params: dict[str, Any]) -> str:
    return operation + json.dumps(params, sort_keys=True, default=str)


class StorageFaults:
    """The injector: installed once per run, armed per action by the simulation."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.countdown = 0           # fire on the countdown-th write of the armed action (0: disarmed)
        self.mode = ""
        self.blocked: set[str] = set()  # requests throttled until the action ends
        self.read_timeouts = False       # lost answers raised as ReadTimeoutError (else InternalServerError)
        self.fired: Counter = Counter()
        self.fired_now: list[str] = []  # faults of the action running (or that ran last)
        self._original: Any = None
        self.hold: _Hold | None = None  # a transaction of another thread waits here until released

    def install(self) -> None:
        from botocore.client import BaseClient

        self._original = original = BaseClient._make_api_call
        faults = self

        def _make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            if operation not in WRITES or client.meta.service_model.service_name != "dynamodb":
                return original(client, operation, params)
            if threading.get_ident() != faults.thread:
                hold = faults.hold
                if hold is not None and operation == "TransactWriteItems" and not hold.reached.is_set():
                    hold.reached.set()  # the slow committer read its clock long ago; it commits when released
                    hold.release.wait(30)
                return original(client, operation, params)
            return faults._call(original, client, operation, params)

        BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]

    def uninstall(self) -> None:
        from botocore.client import BaseClient

        if self._original is not None:
            BaseClient._make_api_call = self._original  # type: ignore[method-assign]
            self._original = None

    @contextlib.contextmanager
    def holding(self) -> Iterator[_Hold]:
        """Hold the next transaction another thread commits until the block releases it (or ends)."""
        self.hold = _Hold(threading.Event(), threading.Event())
        try:
            yield self.hold
        finally:
            self.hold.release.set()
            self.hold = None

    @contextlib.contextmanager
    def armed(self, nth_write: int, mode: str) -> Iterator[None]:
        """Fault the `nth_write`-th write of the enclosed action with `mode`."""
        assert mode in MODES, mode
        self.countdown, self.mode = nth_write, mode
        self.fired_now.clear()
        try:
            yield
        finally:
            self.countdown, self.mode = 0, ""
            self.blocked.clear()

    def _call(self, original: Any, client: Any, operation: str, params: dict[str, Any]) -> Any:
        fingerprint = _fingerprint(operation, params)
        if fingerprint in self.blocked:
            raise _throttled(operation)
        if self.countdown <= 0:
            return original(client, operation, params)
        self.countdown -= 1
        if self.countdown:
            return original(client, operation, params)
        self.fired[f"{operation}:{self.mode}"] += 1
        self.fired_now.append(f"{operation}:{self.mode}")
        if self.mode == "throttled_sticky":
            self.blocked.add(fingerprint)
            raise _throttled(operation)
        original(client, operation, params)  # the write lands; its answer is lost
        if self.mode == "timeout_landed_sticky":
            self.blocked.add(fingerprint)
        elif self.mode == "deadline_landed":
            _expire_deadline()
        raise _lost_answer(operation, self.read_timeouts)


def _expire_deadline() -> None:
    """The unit of work's deadline has passed (only when it has one: a request, a worker batch, a schedule)."""
    from chalicelib import deadline

    if deadline._deadline.get() is not None:
        deadline._deadline.set(deadline._now() - 1.0)
