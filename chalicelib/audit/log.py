"""Writing and reading the audit log.

The operation registry (`chalicelib.edge.registry`) calls `record` for every operation declared with
`audit=` (admin changes, withdrawals) after the request validated and BEFORE the view runs: if the record
cannot be written the request is refused (503) and nothing changes, so no change exists without its
record. The edge adds the answered status afterwards (`finish`). This module knows nothing of HTTP.
Operator commands that change configuration directly record themselves with `record` (their caller: the STS
identity, or the local user). `entries` reads a time range back, oldest first.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import clock
from chalicelib.audit.tables import AuditItem
from chalicelib.dynamo import error_code, with_retries
from chalicelib.errors import AuditConflict
from chalicelib.observability import logger
from chalicelib.settings import settings

HOUR_MS = 3600 * 1000
UNAUTHENTICATED = "unauthenticated"  # the local stack has no IAM in front of it


@dataclass(frozen=True)
class AuditKey:
    """Where one audit item lives."""

    pk: str
    sk: str


def _bucket(request_id: str) -> int:
    return zlib.crc32(request_id.encode()) % settings().hour_buckets


def _summary(body: BaseModel | Mapping[str, Any] | None) -> str | None:
    if body is None:
        return None
    data = body.model_dump(mode="json") if isinstance(body, BaseModel) else dict(body)
    if isinstance(data.get("tokens"), list):
        data["tokens"] = len(data["tokens"])  # how many were presented, not the tokens themselves
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def record(action: str, caller_arn: str | None, target: Mapping[str, Any], body: Any = None,
           request_id: str | None = None, correlation_id: str | None = None) -> AuditKey:
    """Write one audit item now (raises `StorageUnavailable` when it cannot be written)."""
    at_ms = clock.now_ms()
    request_id = request_id or uuid.uuid4().hex
    key = AuditKey(pk=f"{clock.hour_of(at_ms)}#{_bucket(request_id)}", sk=f"{at_ms:013d}#{request_id}")
    item = AuditItem(key.pk, key.sk, at_ms=at_ms, action=action, caller_arn=caller_arn or UNAUTHENTICATED,
                     request_id=request_id, correlation_id=correlation_id,
                     target=json.dumps(dict(target), sort_keys=True, separators=(",", ":")), request=_summary(body))
    try:
        with_retries(lambda: item.save(condition=AuditItem.sk.does_not_exist()))
    except PutError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
        _same_or_conflict(item, exc)  # a retry meeting its own landed write (answer lost) is success
    return key


_RECORDED = ("at_ms", "action", "caller_arn", "request_id", "correlation_id", "target", "request")


def _same_or_conflict(item: AuditItem, exc: Exception) -> None:
    """Nothing when the stored record under `item`'s key is `item` itself; `AuditConflict` otherwise."""
    try:
        stored = with_retries(lambda: AuditItem.get(item.pk, item.sk, consistent_read=True))
    except DoesNotExist:  # the record that failed the condition is gone (never happens: audit items are kept)
        raise AuditConflict("the audit record's key was taken and released; retry the request") from exc
    if any(getattr(stored, name) != getattr(item, name) for name in _RECORDED):
        raise AuditConflict("a different audit record already exists under this request id and time") from exc


def finish(key: AuditKey, status: int) -> None:
    """Add the answered status to a recorded request (best effort: the record itself already exists)."""
    try:
        with_retries(lambda: AuditItem(key.pk, key.sk).update(actions=[AuditItem.status.set(status)]))
    except Exception:
        logger.exception("could not add the status to an audit record", extra={"audit_sk": key.sk})


def entries(since_ms: int, until_ms: int | None = None, action: str | None = None,
            limit: int = 1000) -> Iterator[dict[str, Any]]:
    """Audit items with `since_ms <= at_ms < until_ms`, oldest first (at most `limit`)."""
    until_ms = clock.now_ms() + 1 if until_ms is None else until_ms
    low, high = f"{since_ms:013d}", f"{until_ms:013d}"
    produced = 0
    hour_ms = since_ms - since_ms % HOUR_MS
    while hour_ms < until_ms and produced < limit:
        hour = clock.hour_of(hour_ms)
        found: list[AuditItem] = []
        for bucket in range(settings().hour_buckets):
            found += with_retries(lambda b=bucket, h=hour: list(AuditItem.query(
                f"{h}#{b}", AuditItem.sk.between(low, high), consistent_read=True)))
        for item in sorted(found, key=lambda i: i.sk):
            if int(item.at_ms) >= until_ms or (action and item.action != action):
                continue
            yield view(item)
            produced += 1
            if produced >= limit:
                return
        hour_ms += HOUR_MS


def view(item: AuditItem) -> dict[str, Any]:
    """An audit item as JSON."""
    return {"at_ms": int(item.at_ms), "action": item.action, "caller_arn": item.caller_arn,
            "request_id": item.request_id, "correlation_id": item.correlation_id, "target": json.loads(item.target),
            "request": json.loads(item.request) if item.request else None,
            "status": None if item.status is None else int(item.status)}
