"""Review finding F8. A batch's tally marker expires (TTL 40 days) while the hour it tallied can still be brought
back: a withdrawal forcing in an order of that hour left pending all along marks the hour late, its last pass runs
again, finds the
old batch's credited orders without a marker, takes the batch for one that died before its tally, and
"completes" it: the batch's sum is added to the distributed counters a second time. The hour's "total
distributed" (and the activity's) then counts money twice, and the hour reports a drift that is not one.

GIVEN 300 fen credited by a normal batch in hour H (tallied), and 200 fen of hour H whose credit message was lost;
WHEN 41 days later (the marker gone with its TTL, removed here as DynamoDB's TTL would) the user withdraws, which
credits the 200 fen, and the schedule re-runs hour H; THEN hour H's distributed counter is 500, the sum of its
credited orders read from the ledger, and the hour's report names the batch whose marker may have expired
(`tally_expired`) instead of completing it. DynamoDB Local does not apply TTL, so the test deletes the expired marker.

Before the fix: `assert 800 == 500` (the old batch's 300 fen added a second time).
"""

from __future__ import annotations

import pytest

from chalicelib import clock
from chalicelib.reconcile import runner
from chalicelib.rewards import ids
from chalicelib.rewards.tables import CREDITED
from chalicelib.settings import settings
from tests.rewards_support import (
    deliver_credits,
    forget_schedule_watermark,
    grant_direct,
    make_campaign,
    ns_of,
    order_id_of,
    order_item,
    orders_of,
    payout_mode,
    purge_credits,
    tally_marker,
    withdraw_direct,
)

DAY = 86_400_000


@pytest.fixture(autouse=True)
def _fresh_schedule():
    forget_schedule_watermark()  # this test's hours are 45 days back: the schedule starts afresh there
    yield
    forget_schedule_watermark()


def test_reconcile_tallies__marker_expired_then_hour_brought_back__batch_reported_not_tallied_twice(
        client, monkeypatch):
    purge_credits()
    start = clock.hour_start_ms(clock.hour_of(clock.now_ms() - 45 * DAY)) + 10 * 60_000
    now = [start]
    monkeypatch.setattr(clock, "now_ms", lambda: now[0])
    campaign = make_campaign(client, total=100_000, order_cap=1000, now_ms=start)
    hour = clock.hour_of(start)
    # GIVEN 300 fen granted and credited by a normal batch (its tally marker written) in hour H
    assert grant_direct(campaign.grant_body("u1", rain_id="r1", amount=300))[0] == 202
    deliver_credits()
    first = order_item(campaign, order_id_of(campaign, "u1", "r1"))
    assert first.status == CREDITED
    batch = first.credited_by
    assert tally_marker(campaign, hour, batch) is not None
    # AND 200 fen granted in the same hour whose credit message was lost (never re-driven: see the outage review)
    now[0] += 60_000
    assert grant_direct(campaign.grant_body("u1", rain_id="r2", amount=200))[0] == 202
    purge_credits()
    # WHEN 41 days pass: the batch's tally marker has expired (TTL 40 days; removed here as DynamoDB would)
    tally_marker(campaign, hour, batch).delete()
    now[0] = start + 41 * DAY
    # AND the user withdraws everything: the pending 200 fen is forced in, which marks hour H late
    with payout_mode("ok"):
        status, body = withdraw_direct("u1", {"activity_id": campaign.activity_id, "request_id": "wd-late",
                                              "amount": 500})
    assert status == 200, body
    # AND the schedule runs once the late mark is due (hour H's last pass again)
    now[0] += 20 * 60_000
    runner.scheduled(runner.Budget(None))
    # THEN hour H's distributed counter holds each credited fen of the hour once
    from chalicelib.rewards import counters

    credited = sum(int(o.amount) for o in orders_of(campaign) if o.status == CREDITED and o.hour == hour)
    hour_counter = counters.sum_shards(ids.distributed_hour_counter_id(ns_of(campaign), "CNY", hour),
                                       settings().distributed_shards)[0]
    print(f"credited orders of hour {hour} (ledger): {credited} fen; hour counter: {hour_counter} fen; "
          f"marker of batch {batch}: {tally_marker(campaign, hour, batch)}")
    assert credited == 500
    assert hour_counter == credited
    # AND the hour's last report names the old batch as one whose marker may have expired (300 fen, 1 order)
    report = next(r for r in runner.reports(hour) if r.get("activity_id") == campaign.activity_id and r["pass"] == 2)
    expired = report["discrepancies"]["tally_expired"]
    print("tally_expired:", expired)
    assert expired["count"] == 1
    assert [(item["id"], item["orders_amount"], item["orders_count"])
            for item in expired["items"]] == [(f"{batch}#CNY", 300, 1)]
    # AND no distributed drift: the counter's 500 fen are the live marker's 200 and the expired batch's 300
    assert "distributed_drift" not in report["discrepancies"], report["discrepancies"]
