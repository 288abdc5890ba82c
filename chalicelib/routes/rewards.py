"""Grant routes, stock and totals reads, the public key, the credit worker and the rewards sweeper."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Rate

from chalicelib import clock, validate
from chalicelib.errors import InvalidField, RewardgateError
from chalicelib.http import api, json_object, json_response, status_for
from chalicelib.observability import logger
from chalicelib.queues import CREDITS
from chalicelib.rewards import config_store, crediting, grants, tokens, totals, withdrawals
from chalicelib.rewards.orders import parse_grant

bp = Blueprint(__name__)

MAX_BATCH = 100


def _granted_response(result: grants.Granted) -> Any:
    return json_response(result.body(), 202 if result.created else 200)


@bp.route("/v1/grants", methods=["POST"])
@api
def create_grant() -> Any:
    """Grant one reward: 202 with the new order and its token, 200 with the original for a repeat."""
    request = parse_grant(json_object(bp.current_request.raw_body))
    return _granted_response(grants.grant(request))


def _parse_item(raw: Any) -> Any:
    try:
        return parse_grant(raw)
    except RewardgateError as error:
        return error


@bp.route("/v1/grants/batch", methods=["POST"])
@api
def create_grants() -> Any:
    """Grant up to 100 rewards; each item gets its own status and body, as the single route would."""
    body = json_object(bp.current_request.raw_body, max_bytes=1024 * 1024)
    validate.no_unknown_fields(body, {"grants"})
    items = body.get("grants")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        raise InvalidField("grants", f"must be a list of 1 to {MAX_BATCH} grants")
    results = []
    for index, outcome in enumerate(grants.grant_many([_parse_item(raw) for raw in items])):
        if isinstance(outcome, RewardgateError):
            results.append({"index": index, "status": status_for(outcome), "body": outcome.body()})
        else:
            results.append({"index": index, "status": 202 if outcome.created else 200, "body": outcome.body()})
    return json_response({"results": results})


def _query(name: str, required: bool = True) -> str | None:
    value = (bp.current_request.query_params or {}).get(name)
    if value is None:
        if required:
            raise InvalidField(name, "query parameter is required")
        return None
    return validate.path_ident(value, name)


@bp.route("/v1/activities/{activity_id}/scenes/{scene_id}/stock", methods=["GET"])
@api
def scene_stock(activity_id: str, scene_id: str) -> Any:
    """Total, consumed and remaining stock/budget of a scene in a child activity (default: the current one)."""
    activity = config_store.get_activity(validate.path_ident(activity_id, "activity_id"))
    scene = config_store.get_scene(activity_id, validate.path_ident(scene_id, "scene_id"))
    sub = _query("sub_activity_id", required=False)
    child = activity.child(sub) if sub else activity.wallet_child_at(clock.now_ms())
    if child is None:
        raise InvalidField("sub_activity_id", f"activity {activity_id} has no such child activity")
    return json_response(totals.stock(scene, activity.ns(child), child))


@bp.route("/v1/activities/{activity_id}/totals", methods=["GET"])
@api
def activity_totals(activity_id: str) -> Any:
    """Total distributed per child activity and asset."""
    return json_response(totals.activity_totals(validate.path_ident(activity_id, "activity_id")))


@bp.route("/v1/keys/reward-token", methods=["GET"])
@api
def reward_token_keys() -> Any:
    """The public keys reward tokens verify with (the current one first)."""
    key = tokens.signing_key()
    ordered = [key.kid, *sorted(k for k in key.public_keys if k != key.kid)]
    return json_response({
        "alg": "Ed25519", "current_kid": key.kid,
        "keys": [{"kid": kid, "alg": "Ed25519", "public_key": tokens.public_key_b64(key.public_keys[kid])}
                 for kid in ordered],
    })


@bp.on_sqs_message(queue=CREDITS.name, batch_size=CREDITS.batch_size,
                   maximum_batching_window_in_seconds=CREDITS.batching_window_s)
def credit_worker(event: Any) -> dict:
    """Credit every order in the batch exactly once; failed records are reported, not the batch."""
    return crediting.handle_batch(event)


@bp.schedule(Rate(2, unit=Rate.MINUTES))
def rewards_sweeper(event: Any) -> dict:
    """Re-send credit messages that failed to send; settle withdrawals whose payout outcome is unknown."""
    resent = grants.resend_unsent()
    settled = withdrawals.sweep_unresolved()
    logger.info("rewards sweep", extra={"resent": resent, "settled_withdrawals": settled})
    return {"resent": resent, "settled_withdrawals": settled}



