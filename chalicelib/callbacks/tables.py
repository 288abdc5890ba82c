"""Tables of the callback gateway: stored events and the state they build."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
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
    """Sparse: only events still RECEIVED carry `unapplied_bucket`; the sweeper reads this index."""

    class Meta:
        index_name = "unapplied"
        projection = KeysOnlyProjection()

    unapplied_bucket = UnicodeAttribute(hash_key=True)
    received_at_ms = NumberAttribute(range_key=True)


@table
class EventRecord(Model):
    """One platform callback, stored exactly once under the sha256 of its `Encrypt` field.

    Invariant (enforced by the put-if-absent in the gateway): one item per distinct ciphertext.
    """

    Meta = meta("events", ttl_attribute="expires_at")

    event_id = UnicodeAttribute(hash_key=True)
    tp_app_id = UnicodeAttribute()
    event_type = UnicodeAttribute()
    app_id = UnicodeAttribute(null=True)
    payload = UnicodeAttribute()
    status = UnicodeAttribute()
    received_at_ms = NumberAttribute()
    applied_at_ms = NumberAttribute(null=True)
    list_sk = UnicodeAttribute()
    tp_app_type = UnicodeAttribute()
    unapplied_bucket = UnicodeAttribute(null=True)
    expires_at = TTLAttribute()

    by_tp_app = EventsByTpApp()
    by_tp_app_type = EventsByTpAppType()
    unapplied = UnappliedEvents()


@table
class AppStateItem(Model):
    """One aspect of an authorized app's state (authorization, one review aspect) or a tp app's ticket.

    `item_key` is `{app_id}#{aspect}`, or `#ticket` for the tp app's component ticket. Invariant
    (enforced by the conditional put in the events worker): an aspect only moves forward in
    (`event_time_ms`, `event_id`) order, so redelivered or out-of-order events converge.
    """

    Meta = meta("app-state")

    tp_app_id = UnicodeAttribute(hash_key=True)
    item_key = UnicodeAttribute(range_key=True)
    event_time_ms = NumberAttribute()
    event_id = UnicodeAttribute()
    event_type = UnicodeAttribute()
    data = UnicodeAttribute()
    updated_at_ms = NumberAttribute()
