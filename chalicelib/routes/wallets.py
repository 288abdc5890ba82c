"""Wallet routes: balance with pending rewards, the merged flow, withdrawals."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib import clock, validate
from chalicelib.errors import InvalidField, PayoutFailed
from chalicelib.http import api, error_response, json_object, json_response
from chalicelib.rewards import config_store, ids, wallets, withdrawals
from chalicelib.rewards.tables import PAID, REFUNDED

bp = Blueprint(__name__)

ASSET_PATTERN = "CNY or coupon:<template_id>"


def _wallet_id(act_id: str) -> tuple[str, str]:
    params = bp.current_request.query_params or {}
    activity_id = params.get("activity_id")
    if activity_id is None:
        raise InvalidField("activity_id", "query parameter is required")
    activity = config_store.get_activity(validate.path_ident(activity_id, "activity_id"))
    sub = params.get("sub_activity_id")
    child = activity.child(validate.path_ident(sub, "sub_activity_id")) if sub else activity.wallet_child_at(
        clock.now_ms())
    if child is None:
        raise InvalidField("sub_activity_id", f"activity {activity_id} has no such child activity")
    asset = params.get("asset", ids.CASH_ASSET)
    if asset != ids.CASH_ASSET and not (asset.startswith("coupon:") and validate.IDENT.fullmatch(asset[7:])):
        raise InvalidField("asset", f"must be {ASSET_PATTERN}")
    return ids.wallet_id(activity.ns(child), validate.path_ident(act_id, "act_id"), asset), asset


@bp.route("/v1/wallets/{act_id}", methods=["GET"])
@api
def wallet(act_id: str) -> Any:
    """Balance, pending (granted but not yet credited) and totals of a user's wallet."""
    wallet_id, asset = _wallet_id(act_id)
    return json_response(wallets.view(wallet_id, asset).body())


@bp.route("/v1/wallets/{act_id}/flow", methods=["GET"])
@api
def wallet_flow(act_id: str) -> Any:
    """Credits, withdrawals, refunds and pending rewards, newest first, with a stable cursor."""
    wallet_id, _ = _wallet_id(act_id)
    params = bp.current_request.query_params or {}
    return json_response(wallets.flow(wallet_id, validate.query_limit(params), params.get("cursor")))


@bp.route("/v1/wallets/{act_id}/withdrawals", methods=["POST"])
@api
def withdraw(act_id: str) -> Any:
    """Withdraw cash: 200 paid, 202 payout pending, 502 payout failed and refunded; repeats answer the same."""
    request = withdrawals.parse_withdrawal(json_object(bp.current_request.raw_body))
    outcome = withdrawals.withdraw(validate.path_ident(act_id, "act_id"), request)
    if outcome.status == REFUNDED:
        failed = PayoutFailed(f"payout failed and was refunded: {outcome.failure}", **outcome.body())
        return error_response(failed)
    return json_response(outcome.body(), 200 if outcome.status == PAID else 202)
