"""The reconciliation table: run progress, per-bucket partial results, reports, counter checkpoints.

- `run#{hour}#p{pass}` / `head`: a run's progress (next step, status) — the resumption cursor.
- `run#{hour}#p{pass}` / `bucket#{n}`: what bucket n of the hour yielded (kept until the run finishes).
- `run#{hour}#p{pass}` / `gap#{other hour}#{n}`: order totals of bucket n of an unrecorded hour being caught up.
- `hoursum#{ns}|{scene}` / `{hour}`: the scene's order total in a closed hour (only hours with orders).
- `hours` / `{hour}`: the hour's totals are recorded (complete); see `chalicelib.reconcile.hours`.
- `report#{hour}` / `{ns}#p{pass}` and `_run#p{pass}`: the reports.
- `cum#{counter_id}` / `stock`: the sum of a stock counter's orders through a closed hour.
- `wallet-check#{wallet_id}` / `cp`: the wallet's posted entries through a time, counted and summed as last
  verified (`chalicelib.reconcile.wallet_checks`); expires 35 days after its last write.
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.models import Model

from chalicelib.dynamo import meta, table


@table
class ReconItem(Model):
    """One reconciliation record; `body` is JSON."""

    Meta = meta("reconciliation", ttl_attribute="expires_at")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    body = UnicodeAttribute()
    updated_at_ms = NumberAttribute()
    expires_at = TTLAttribute(null=True)
