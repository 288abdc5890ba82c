"""Tables of the callback gateway: stored events and the state they build."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model

from chalicelib.dynamo import meta, table


class EventsByTpApp(GlobalSecondaryIndex["EventRecord"]):
    """A tp app's events, newest first (`list_sk` sorts by receive time)."""

    class Meta:
        index_name = "by_tp_app"
        projection = AllProjection()

    tp_app_id = UnicodeAttribute(hash_key=True)
    list_sk = UnicodeAttribute(range_key=True)


class EventsByTpAppType(GlobalSecondaryIndex["EventRecord"]):
    """A tp app's events of one type, newest first."""

    class Meta:
        index_name = "by_tp_app_type"
        projection = AllProjection()

    tp_app_type = UnicodeAttribute(hash_key=True)
    list_sk = UnicodeAttribute(range_key=True)


class UnappliedEvents(GlobalSecondaryIndex["EventRecord"]):
    """Sparse: only events still RECEIVED carry `unapplied_bucket`; the sweeper reads this index.

    `due_at_ms` is when the sweeper should next re-enqueue the event (received + SLA, then backing
    off), so one range query per bucket finds exactly the overdue events, without a scan.
    """

    class Meta:
        index_name = "unapplied"
        projection = IncludeProjection(["sweep_attempts"])

    unapplied_bucket = UnicodeAttribute(hash_key=True)
    due_at_ms = NumberAttribute(range_key=True)


@table
class EventRecord(Model):
    """One platform callback, stored exactly once under the sha256 of its `Encrypt` field.

    Invariant (enforced by the put-if-absent in the gateway): one item per distinct ciphertext.
    `status` goes RECEIVED -> APPLIED | UNKNOWN | MALFORMED, once; `unapplied_bucket` and `due_at_ms`
    exist exactly while it is RECEIVED.
    """

    Meta = meta("events", ttl_attribute="expires_at")

    event_id = UnicodeAttribute(hash_key=True)
    tp_app_id = UnicodeAttribute()
    event_type = UnicodeAttribute()
    app_id = UnicodeAttribute(null=True)
    payload = UnicodeAttribute()
    status = UnicodeAttribute()
    channel = UnicodeAttribute(null=True)  # which endpoint received it: "auth" or "events"
    note = UnicodeAttribute(null=True)  # why an event was not applied (UNKNOWN, MALFORMED)
    received_at_ms = NumberAttribute()
    applied_at_ms = NumberAttribute(null=True)
    list_sk = UnicodeAttribute()
    tp_app_type = UnicodeAttribute()
    unapplied_bucket = UnicodeAttribute(null=True)
    due_at_ms = NumberAttribute(null=True)
    sweep_attempts = NumberAttribute(null=True)
    expires_at = TTLAttribute()

    by_tp_app = EventsByTpApp()
    by_tp_app_type = EventsByTpAppType()
    unapplied = UnappliedEvents()


@table
class AppStateItem(Model):
    """One aspect of an authorized app's state (authorization, one review aspect) or a tp app's ticket.

    `item_key` is `{app_id}#{aspect}` (e.g. `tt01#authorization`, `tt01#review#package_audit#douyin`;
    see `events.AspectUpdate.item_key`), or `#ticket` for the tp app's component ticket. Invariant
    (enforced by the conditional put in the events worker): an aspect only moves forward in
    (`event_time_ms`, `event_id`) order, so redelivered or out-of-order events converge. `data` is the
    aspect's JSON.
    """

    Meta = meta("app-state")

    tp_app_id = UnicodeAttribute(hash_key=True)
    item_key = UnicodeAttribute(range_key=True)
    event_time_ms = NumberAttribute()
    event_id = UnicodeAttribute()
    event_type = UnicodeAttribute()
    data = UnicodeAttribute()
    updated_at_ms = NumberAttribute()
