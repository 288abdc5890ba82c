"""Grant routes, stock and totals reads, the public keys, the credit worker and the rewards sweeper."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from chalice import Blueprint, Rate

from chalicelib import clock, deadline
from chalicelib import errors as e
from chalicelib.edge.registry import GRANT, PUBLIC, READ, Deprecated, operation, validate_body
from chalicelib.http import REFUSAL_METRICS, json_response, problem_body, status_for
from chalicelib.observability import count, logger, metric_scope
from chalicelib.queues import CREDITS
from chalicelib.rewards import config_store, crediting, grants, tokens, totals, withdrawals
from chalicelib.rewards.models import (
    GrantBatchBody,
    GrantBatchView,
    GrantBody,
    GrantView,
    JwksView,
    KeysView,
    StockQuery,
    StockView,
    TotalsView,
)
from chalicelib.rewards.orders import GrantRequest

bp = Blueprint(__name__)

GRANT_ERRORS = (e.ActivityNotFound, e.SceneNotFound, e.OutsideActivityWindow, e.SoldOut, e.OrderConflict,
                e.AmountOverCap, e.AwardTypeMismatch, e.OpenTimeOutOfRange, e.RateLimited, e.SwitchedOff)


def grant_request(body: GrantBody) -> GrantRequest:
    """The domain's request from the validated body (every field the domain's request declares)."""
    return GrantRequest(**{f.name: getattr(body, f.name) for f in fields(GrantRequest)})


def _count(result: grants.Granted) -> None:
    count("GrantsCreated" if result.created else "GrantRepeats")


@operation(bp, "POST", "/v1/grants", summary="Grant one reward", access=GRANT, body=GrantBody,
           responses={202: GrantView, 200: GrantView}, errors=GRANT_ERRORS)
def create_grant(body: GrantBody) -> Any:
    """Grant one reward: 202 with the new order and its token, 200 with the original for a repeat."""
    result = grants.grant(grant_request(body))
    _count(result)
    return json_response(result.body(), 202 if result.created else 200)


def _parse_item(raw: Any) -> GrantRequest | e.RewardgateError:
    import json

    if not isinstance(raw, dict):
        return e.InvalidField("grant", "must be a JSON object")
    try:
        return grant_request(validate_body(GrantBody, json.dumps(raw)))  # type: ignore[arg-type]
    except e.RewardgateError as error:
        return error


@operation(bp, "POST", "/v1/grants/batch", summary="Grant up to 100 rewards", access=GRANT, body=GrantBatchBody,
           responses={200: GrantBatchView}, max_body_bytes=1024 * 1024, errors=(e.SwitchedOff,))
def create_grants(body: GrantBatchBody) -> Any:
    """Grant up to 100 rewards; each item gets its own status and body, as the single route would."""
    results = []
    for index, outcome in enumerate(grants.grant_many([_parse_item(raw) for raw in body.grants])):
        if isinstance(outcome, e.RewardgateError):
            status = status_for(outcome)
            if outcome.code in REFUSAL_METRICS:
                count(REFUSAL_METRICS[outcome.code])
            results.append({"index": index, "status": status, "body": problem_body(outcome, status)})
        else:
            _count(outcome)
            results.append({"index": index, "status": 202 if outcome.created else 200, "body": outcome.body()})
    return json_response({"results": results})


@operation(bp, "GET", "/v1/activities/{activity_id}/scenes/{scene_id}/stock", summary="A scene's stock or budget",
           access=READ, query=StockQuery, responses={200: StockView},
           errors=(e.ActivityNotFound, e.SceneNotFound, e.OutsideActivityWindow))
def scene_stock(activity_id: str, scene_id: str, query: StockQuery) -> Any:
    """Total, consumed and remaining stock/budget of a scene in a child activity (default: the current one)."""
    activity = config_store.get_activity(activity_id)
    scene = config_store.get_scene(activity_id, scene_id)
    sub = query.sub_activity_id
    child = activity.child(sub) if sub else activity.wallet_child_at(clock.now_ms())
    if child is None:
        raise e.InvalidField("sub_activity_id", f"activity {activity_id} has no such child activity")
    return json_response(totals.stock(scene, activity.ns(child), child))


@operation(bp, "GET", "/v1/activities/{activity_id}/totals", summary="Total distributed", access=READ,
           responses={200: TotalsView}, errors=(e.ActivityNotFound,))
def activity_totals(activity_id: str) -> Any:
    """Total distributed per child activity and asset."""
    return json_response(totals.activity_totals(activity_id))


@operation(bp, "GET", "/v1/keys/reward-token", summary="Reward-token public keys (legacy form)", access=READ,
           responses={200: KeysView}, deprecated=Deprecated(since=datetime.date(2026, 12, 8),
                                                            sunset=datetime.date(2027, 6, 30),
                                                            successor="/.well-known/jwks.json"))
def reward_token_keys() -> Any:
    """The public keys reward tokens verify with (the current one first), as raw base64url Ed25519 keys."""
    key = tokens.signing_key()
    return json_response({
        "alg": "Ed25519", "current_kid": key.kid,
        "keys": [{"kid": kid, "alg": "Ed25519", "public_key": tokens.public_key_b64(key.public_keys[kid])}
                 for kid in tokens.ordered_kids(key)],
    })


@operation(bp, "GET", "/.well-known/jwks.json", summary="JSON Web Key Set of reward tokens", access=PUBLIC,
           responses={200: JwksView}, tags=("keys",))
def jwks() -> Any:
    """The JWKS (RFC 7517, OKP keys of RFC 8037) any JOSE library verifies reward tokens with; public."""
    return json_response(tokens.jwks(tokens.signing_key()), headers={"Cache-Control": "public, max-age=300"})


@bp.on_sqs_message(queue=CREDITS.name, batch_size=CREDITS.batch_size,
                   maximum_batching_window_in_seconds=CREDITS.batching_window_s)
def credit_worker(event: Any) -> dict:
    """Credit every order in the batch exactly once; failed records are reported, not the batch."""
    with metric_scope(), deadline.bounded(getattr(event, "context", None)):  # one EMF document per batch (Credits)
        return crediting.handle_batch(event)


def _isolated(part: str, work: Callable[[], int]) -> int | None:
    """Run one part of the sweep; a failure is logged and counted (None), never stops the other part."""
    try:
        return work()
    except Exception:
        logger.exception("rewards sweep part failed; the other part still runs", extra={"part": part})
        return None


@bp.schedule(Rate(2, unit=Rate.MINUTES))
def rewards_sweeper(event: Any) -> dict:
    """Settle withdrawals whose payout outcome is unknown, then re-send credit messages that failed to send.

    Payouts go first (they need the provider and DynamoDB, not SQS) and each part is isolated: a failure or an
    expired deadline in one never stops the other, and the re-send stops at its first failed send, so an SQS
    outage cannot starve the payout sweep.
    """
    with deadline.bounded(getattr(event, "context", None)):
        settled = _isolated("payouts", withdrawals.sweep_unresolved)
        resent = _isolated("resend", grants.resend_unsent)
    logger.info("rewards sweep", extra={"resent": resent, "settled_withdrawals": settled})
    return {"resent": resent, "settled_withdrawals": settled}
