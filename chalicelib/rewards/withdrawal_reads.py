"""Reading one withdrawal back: `GET /v1/wallets/{act_id}/withdrawals/{request_id}` and `withdrawal show`.

A request id belongs to a user in a parent activity, so the read finds the withdrawal in whichever child
activity it was made (`withdrawals.find`); naming a child narrows it to that child.
"""

from __future__ import annotations

from typing import Any

from chalicelib.errors import WithdrawalNotFound
from chalicelib.rewards import ids, withdrawals


def withdrawal_view(activity_id: str, act_id: str, request_id: str, sub_activity_id: str | None,
                    legacy_sub_activity_id: str) -> dict[str, Any]:
    """`{request_id, sub_activity_id, amount, status, payout_ref, created_at_ms, resolved_at_ms}`.

    `legacy_sub_activity_id` is the child whose wallet holds a withdrawal made before request ids were
    kept per user (the named child, else the one open now).
    """
    legacy_wallet = ids.wallet_id(ids.child_ns(activity_id, legacy_sub_activity_id), act_id, ids.CASH_ASSET)
    item = withdrawals.find(activity_id, act_id, request_id, legacy_wallet)
    child = item.sub_activity_id or legacy_sub_activity_id
    if sub_activity_id is not None and child != sub_activity_id:
        raise WithdrawalNotFound(f"no withdrawal {request_id} for this user in activity {activity_id}",
                                 request_id=request_id)
    return {"request_id": item.request_id, "sub_activity_id": child, "amount": int(item.amount),
            "status": item.status, "payout_ref": item.payout_ref, "created_at_ms": int(item.created_at_ms),
            "resolved_at_ms": None if item.resolved_at_ms is None else int(item.resolved_at_ms)}
