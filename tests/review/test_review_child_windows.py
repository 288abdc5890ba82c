"""A child window edited after a grant moves the grant's open time into another child: the identical retry (same
`open_time_ms`, as the API asks) lands in the other child's namespace, where no order exists, and a second order is
created and credited. The scene's terms keep a history for exactly this reason (an order's key must not follow
configuration changed after it was won); the child windows, which choose the order's namespace, keep none, and
`PUT /v1/admin/activities/{id}` accepts any move of a window, in the past included.

Orders and credits are counted from the ledger of both children (scans), not from the grant code's answers.
"""

from __future__ import annotations

from chalicelib import clock
from tests.conftest import uid
from tests.rewards_support import (
    Campaign,
    call,
    deliver_credits,
    orders_of,
    purge_credits,
    wallet_id_of,
    wallet_item,
)

MIN = 60_000
HOUR = 60 * MIN


def children(gray_end_ms: int, now_ms: int) -> list[dict]:
    return [{"sub_activity_id": "gray", "purpose": "gray_rehearsal", "starts_at_ms": now_ms - 2 * HOUR,
             "ends_at_ms": gray_end_ms},
            {"sub_activity_id": "formal", "purpose": "formal", "starts_at_ms": gray_end_ms,
             "ends_at_ms": now_ms + 24 * HOUR}]


def test_grant__child_window_moved_after_grant__identical_retry_makes_no_second_order(client):
    purge_credits()
    now = clock.now_ms()
    activity_id, scene_id = uid("act"), uid("scene")
    # GIVEN a gray rehearsal that ended 30 minutes ago and the formal child open since then
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}",
                        {"name": "windows", "children": children(now - 30 * MIN, now)})
    assert status == 200, body
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}/scenes/{scene_id}",
                        {"award_type": "cash", "order_cap": 1000, "total": 100_000, "shard_count": 1})
    assert status == 200, body
    campaign = Campaign(activity_id, "formal", scene_id, "cash", 1000)
    # AND a reward of 500 fen won 10 minutes ago (in the formal child), granted and answered 202
    grant = campaign.grant_body("u1", amount=500, open_time_ms=now - 10 * MIN)
    status, first = call(client, "POST", "/v1/grants", grant)
    assert (status, first["sub_activity_id"]) == (202, "formal"), first
    # WHEN an operator extends the gray rehearsal to now (the formal child starts now)
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}",
                        {"name": "windows", "children": children(now, now)})
    assert status == 200, body
    # AND the upstream retries the identical grant (its first answer was lost)
    status, again = call(client, "POST", "/v1/grants", grant)
    print("retry answer:", status, again.get("sub_activity_id"), again.get("order_id"))
    deliver_credits()
    # THEN there is still one order for this reward, and 500 fen credited once over both children
    orders = [(o.wallet_id, int(o.amount)) for sub in ("gray", "formal") for o in orders_of(campaign, sub)]
    credited = sum(int(w.balance) for sub in ("gray", "formal")
                   if (w := wallet_item(wallet_id_of(campaign, "u1", sub))) is not None)
    print("orders:", orders, "credited:", credited)
    assert len(orders) == 1, orders
    assert credited == 500
