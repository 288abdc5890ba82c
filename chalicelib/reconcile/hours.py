"""Hour totals: what each closed hour's orders sum to per scene, recorded by the passes; and the stock
checkpoints that catch up over them.

A stock check compares a scene's counter with the sum of the scene's orders through a closed hour. That sum
is kept as a checkpoint (`cum#{counter}` / `stock`: through hour T, amount A) and carried forward: through H
it is A + the scene's orders of every hour after T and before H + those of H. Reading every bucket of every
hour in between (RG_HOUR_BUCKETS queries an hour) is what used to make a scene idle for a week cost 43 008
queries at 256 buckets in one step. Instead every pass, once it has read all of an hour's buckets, records:

- `hoursum#{ns}|{scene}` / `{hour}`: `{"amount": n}` for each scene with orders in the hour (any scene: also
  scenes without stock control or with reconciliation off, so switching either on later finds them), and
- `hours` / `{hour}`: the marker that the hour's totals are complete, written only after all its totals.

So for a recorded hour, a scene without a `hoursum` item had no order in it. Catching a checkpoint up from T
to H is then one query of the markers for the hours in between and one query of the scene's totals: O(1)
calls however many idle hours there are. An hour in between that no pass ever recorded (the schedule was
down longer than it looks back, or the hour predates this record) is never assumed empty: the pass that
needs it sums it first, bucket by bucket, in steps of its own (`runner`), and records it for everyone.

Why this never skips an hour with orders: an hour's orders no longer change once it is closed (+ the grace
for late writes) and a pass reads the hour only after that; its totals are recorded from every one of its
buckets (a pass whose buckets were read by an older version that did not keep totals records nothing); the
marker is written after the totals; records are never deleted, so a marker seen means its totals are there.
An hour whose marker is missing is summed, not skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import clock
from chalicelib.dynamo import error_code, with_retries
from chalicelib.reconcile.tables import ReconItem

HOUR_MS = 3600 * 1000
RECORDED_PK = "hours"


def next_hour(hour: str, steps: int = 1) -> str:
    """The hour `steps` after `hour`."""
    return clock.hour_of(clock.hour_start_ms(hour) + steps * HOUR_MS)


def hours_between(first: str, last: str) -> list[str]:
    """Every hour from `first` through `last` (empty when `first` is after `last`)."""
    out = []
    hour = first
    while hour <= last:
        out.append(hour)
        hour = next_hour(hour)
    return out


def _totals_pk(scene_key: str) -> str:
    return f"hoursum#{scene_key}"


def record_hour(hour: str, totals: Mapping[str, int]) -> None:
    """Record a closed hour's order totals per "{ns}|{scene}" (complete: every bucket read), then its marker."""
    now = clock.now_ms()
    # One PutItem each (the reconciler is granted PutItem, not BatchWriteItem); a repeat writes the same items.
    for scene_key, amount in sorted(totals.items()):
        with_retries(ReconItem(_totals_pk(scene_key), hour, body=json.dumps({"amount": amount}),
                               updated_at_ms=now).save)
    with_retries(ReconItem(RECORDED_PK, hour, body="{}", updated_at_ms=now).save)


def unrecorded(first: str, last: str) -> list[str]:
    """The hours from `first` through `last` whose totals no pass has recorded (one query)."""
    if first > last:
        return []
    recorded = with_retries(lambda: {item.sk for item in ReconItem.query(
        RECORDED_PK, range_key_condition=ReconItem.sk.between(first, last), consistent_read=True,
        attributes_to_get=["pk", "sk"])})
    return [hour for hour in hours_between(first, last) if hour not in recorded]


def scene_total(scene_key: str, first: str, last: str) -> int:
    """The scene's recorded order totals over the hours from `first` through `last` (one query)."""
    if first > last:
        return 0
    return with_retries(lambda: sum(json.loads(item.body)["amount"] for item in ReconItem.query(
        _totals_pk(scene_key), range_key_condition=ReconItem.sk.between(first, last), consistent_read=True)))


def recorded_total(scene_key: str, first: str, last: str) -> int | None:
    """The scene's order total over the hours `first` through `last` if every one of them is recorded (two
    queries), else None."""
    if unrecorded(first, last):
        return None
    return scene_total(scene_key, first, last)


def _checkpoint_pk(counter_id: str) -> str:
    return f"cum#{counter_id}"


def read_checkpoint(counter_id: str) -> dict | None:
    """A stock counter's checkpoint: `{"through": hour, "amount": sum of its orders through it}`, if any."""
    try:
        return json.loads(with_retries(lambda: ReconItem.get(_checkpoint_pk(counter_id), "stock",
                                                             consistent_read=True)).body)
    except DoesNotExist:
        return None


def checkpoint_base(checkpoint: dict | None, first_hour: str) -> tuple[str, int]:
    """(hour, amount) a catch-up starts from: the checkpoint, or the hour before `first_hour` (the first that can
    hold the child's orders) with 0."""
    if checkpoint is not None:
        return checkpoint["through"], checkpoint["amount"]
    return next_hour(first_hour, -1), 0


def advance(counter_id: str, scene_key: str, hour: str, hour_amount: int,
            first_hour: Callable[[], str]) -> tuple[str, int] | None:
    """(through_hour, sum of the scene's orders through it), the checkpoint advanced to `hour` if it was behind.

    None when an hour between the checkpoint and `hour` is not recorded (the caller sums it first, or defers).
    A checkpoint only ever covers closed hours, whose orders no longer change. `first_hour()` (the first hour
    that can hold the counter's orders) is asked only when there is no checkpoint yet.
    """
    current = read_checkpoint(counter_id)
    if current is not None and current["through"] >= hour:
        return current["through"], current["amount"]
    base_hour, amount = checkpoint_base(current, first_hour() if current is None else "")
    first, last = next_hour(base_hour), next_hour(hour, -1)
    if unrecorded(first, last):
        return None
    amount += scene_total(scene_key, first, last) + hour_amount
    pk = _checkpoint_pk(counter_id)
    item = ReconItem(pk, "stock", body=json.dumps({"through": hour, "amount": amount}), updated_at_ms=clock.now_ms())
    condition = ReconItem.pk.does_not_exist() if current is None else (ReconItem.body == json.dumps(current))
    try:
        with_retries(lambda: item.save(condition=condition))
    except PutError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
        latest = read_checkpoint(counter_id)  # another run advanced it first: theirs stands
        return latest["through"], latest["amount"]
    return hour, amount
