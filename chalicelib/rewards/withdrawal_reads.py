"""Reading one withdrawal back: `GET /v1/wallets/{act_id}/withdrawals/{request_id}`.

Merge note: issue 9 reworks withdrawals (global payout ids, repeats across child windows) and provides
the read; when it lands, `withdrawal_view` becomes a call to its function and this module goes.
"""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib.dynamo import with_retries
from chalicelib.errors import WithdrawalNotFound
from chalicelib.rewards.tables import WithdrawalItem


def withdrawal_view(wallet_id: str, sub_activity_id: str, request_id: str) -> dict[str, Any]:
    """`{request_id, sub_activity_id, amount, status, payout_ref, created_at_ms, resolved_at_ms}`."""
    try:
        item = with_retries(lambda: WithdrawalItem.get(wallet_id, request_id, consistent_read=True))
    except DoesNotExist:
        raise WithdrawalNotFound(f"no withdrawal {request_id} in this wallet", request_id=request_id) from None
    return {"request_id": item.request_id, "sub_activity_id": sub_activity_id, "amount": int(item.amount),
            "status": item.status, "payout_ref": item.payout_ref, "created_at_ms": int(item.created_at_ms),
            "resolved_at_ms": None if item.resolved_at_ms is None else int(item.resolved_at_ms)}
