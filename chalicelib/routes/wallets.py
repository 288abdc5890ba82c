"""Wallet routes: balance with pending rewards, the merged flow, withdrawals."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib import clock
from chalicelib import errors as e
from chalicelib.edge.registry import WALLET, operation
from chalicelib.http import error_response, json_response
from chalicelib.observability import count
from chalicelib.rewards import config_store, ids, wallets, withdrawal_reads, withdrawals
from chalicelib.rewards.config import Child
from chalicelib.rewards.models import (
    FlowPage,
    FlowQuery,
    WalletQuery,
    WalletView,
    WithdrawalBody,
    WithdrawalQuery,
    WithdrawalRecord,
    WithdrawalView,
)
from chalicelib.rewards.tables import PAID, REFUNDED

bp = Blueprint(__name__)

WALLET_ERRORS = (e.ActivityNotFound, e.OutsideActivityWindow)


def _child(activity_id: str, sub_activity_id: str | None) -> tuple[str, Child]:
    activity = config_store.get_activity(activity_id)
    child = activity.child(sub_activity_id) if sub_activity_id else activity.wallet_child_at(clock.now_ms())
    if child is None:
        raise e.InvalidField("sub_activity_id", f"activity {activity_id} has no such child activity")
    return activity.ns(child), child


def _wallet_id(act_id: str, query: WalletQuery | WithdrawalQuery, asset: str = ids.CASH_ASSET) -> str:
    ns, _ = _child(query.activity_id, query.sub_activity_id)
    return ids.wallet_id(ns, act_id, asset)


@operation(bp, "GET", "/v1/wallets/{act_id}", summary="A user's wallet", access=WALLET, query=WalletQuery,
           responses={200: WalletView}, errors=WALLET_ERRORS)
def wallet(act_id: str, query: WalletQuery) -> Any:
    """Balance, pending (granted but not yet credited) and totals of a user's wallet."""
    return json_response(wallets.view(_wallet_id(act_id, query, query.asset), query.asset).body())


@operation(bp, "GET", "/v1/wallets/{act_id}/flow", summary="A wallet's flow", access=WALLET, query=FlowQuery,
           responses={200: FlowPage}, errors=WALLET_ERRORS)
def wallet_flow(act_id: str, query: FlowQuery) -> Any:
    """Credits, withdrawals, refunds and pending rewards, newest first, with a stable cursor."""
    return json_response(wallets.flow(_wallet_id(act_id, query, query.asset), query.limit, query.cursor))


@operation(bp, "POST", "/v1/wallets/{act_id}/withdrawals", summary="Withdraw cash", access=WALLET,
           body=WithdrawalBody, responses={200: WithdrawalView, 202: WithdrawalView}, audit="withdrawal.create",
           errors=(*WALLET_ERRORS, e.InvalidToken, e.InsufficientBalance, e.WithdrawalConflict, e.SwitchedOff,
                   e.PayoutUnavailable, e.PayoutFailed))
def withdraw(act_id: str, body: WithdrawalBody) -> Any:
    """Withdraw cash: 200 paid, 202 payout pending, 502 payout failed and refunded; repeats answer the same."""
    request = withdrawals.WithdrawalRequest(activity_id=body.activity_id, sub_activity_id=body.sub_activity_id,
                                            request_id=body.request_id, amount=body.amount, tokens=tuple(body.tokens))
    outcome = withdrawals.withdraw(act_id, request)
    count(f"Withdrawals{outcome.status.title().replace('_', '')}")
    if outcome.status == REFUNDED:
        failed = e.PayoutFailed(f"payout failed and was refunded: {outcome.failure}", **outcome.body())
        return error_response(failed)
    return json_response(outcome.body(), 200 if outcome.status == PAID else 202)


@operation(bp, "GET", "/v1/wallets/{act_id}/withdrawals/{request_id}", summary="One withdrawal", access=WALLET,
           query=WithdrawalQuery, responses={200: WithdrawalRecord}, errors=(*WALLET_ERRORS, e.WithdrawalNotFound))
def get_withdrawal(act_id: str, request_id: str, query: WithdrawalQuery) -> Any:
    """A withdrawal's amount, status, payout reference and times, in whichever child activity it was made."""
    _, child = _child(query.activity_id, query.sub_activity_id)  # validates the activity and a named child
    return json_response(withdrawal_reads.withdrawal_view(query.activity_id, act_id, request_id,
                                                          query.sub_activity_id, child.sub_activity_id))
