"""The audit table: one item per admin change or withdrawal request, written BEFORE the change.

Key: `pk` = `{YYYYMMDDHH}#{bucket}` (the hour of the request, spread over `RG_HOUR_BUCKETS`
partitions by request id, so a burst of withdrawals never makes one hot partition), `sk` =
`{at_ms:013d}#{request_id}`. A time range is read hour by hour, bucket by bucket (`chalicelib.audit.log`).
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from chalicelib.dynamo import meta, table


@table
class AuditItem(Model):
    """One audited request: the action, the caller's ARN, what it addressed and, once known, its status."""

    Meta = meta("audit")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    at_ms = NumberAttribute()
    action = UnicodeAttribute()
    caller_arn = UnicodeAttribute()
    request_id = UnicodeAttribute()
    correlation_id = UnicodeAttribute(null=True)
    target = UnicodeAttribute()  # JSON: the path parameters
    request = UnicodeAttribute(null=True)  # JSON: the validated body (tokens reduced to a count)
    status = NumberAttribute(null=True)  # the HTTP status answered, set after the request
