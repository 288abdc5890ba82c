"""The records a reconciliation pass keeps in the reconcile table: its head, step results and reports."""

from __future__ import annotations

import json
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib import clock
from chalicelib.dynamo import with_retries
from chalicelib.reconcile.tables import ReconItem

RUN_TTL_S = 14 * 24 * 3600
RUN_NS = "_run"  # the namespace of run-level findings (queues, events, play, payouts)


def run_pk(hour: str, pass_no: int) -> str:
    """The partition of one pass's records."""
    return f"run#{hour}#p{pass_no}"


def get_body(pk: str, sk: str) -> dict[str, Any] | None:
    """A stored JSON body, strongly consistent (None when absent)."""
    try:
        return json.loads(with_retries(lambda: ReconItem.get(pk, sk, consistent_read=True)).body)
    except DoesNotExist:
        return None


def put_body(pk: str, sk: str, body: dict[str, Any], ttl_s: int | None = None) -> None:
    """Store a JSON body (expiring after `ttl_s` when given)."""
    now = clock.now_ms()
    item = ReconItem(pk, sk, body=json.dumps(body, sort_keys=True, separators=(",", ":")), updated_at_ms=now,
                     expires_at=clock.utc_datetime(now + ttl_s * 1000) if ttl_s else None)
    with_retries(item.save)


def query_all(index_or_model: Any, hash_key: str, **kwargs: Any) -> list[Any]:
    """Every item of one partition (a table's or an index's)."""
    # One fresh query per attempt: a retried, half-consumed result iterator would skip items.
    return with_retries(lambda: list(index_or_model.query(hash_key, **kwargs)))
