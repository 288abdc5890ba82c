"""Expected RFC 9457 problem bodies, written out independently of the code under test."""

from __future__ import annotations

from typing import Any

STATUS = {
    "invalid_field": 400, "invalid_json": 400, "invalid_token": 400, "rejected": 403, "not_found": 404,
    "route_not_found": 404, "unknown_tp_app": 404, "activity_not_found": 404, "scene_not_found": 404,
    "outside_activity_window": 404, "withdrawal_not_found": 404, "method_not_allowed": 405,
    "overlapping_windows": 409, "total_below_consumed": 409, "config_conflict": 409, "sold_out": 409,
    "order_conflict": 409, "insufficient_balance": 409, "withdrawal_conflict": 409, "payload_too_large": 413,
    "unsupported_media_type": 415, "amount_over_cap": 422, "award_type_mismatch": 422,
    "open_time_out_of_range": 422, "switch_name_retired": 422, "rate_limited": 429, "internal_error": 500,
    "payout_failed": 502,
    "storage_unavailable": 503, "switched_off": 503, "payout_unavailable": 503,
    # interactive play
    "play_app_not_found": 404, "anchor_not_found": 404, "play_app_exists": 409, "sandbox_immutable": 409,
    "code_room_conflict": 409, "live_event_conflict": 409, "sandbox_only": 409,
}
TITLES = {
    "activity_not_found": "No activity with this id is configured",
    "amount_over_cap": "The amount exceeds the scene's per-order cap",
    "award_type_mismatch": "The grant's award type differs from the scene's configured award type",
    "rejected": "Callback rejected",
    "config_conflict": "The configuration changed concurrently; re-read and retry",
    "insufficient_balance": "The wallet balance is below the withdrawal amount: nothing was debited",
    "internal_error": "An unexpected failure inside rewardgate",
    "invalid_field": "A request field is missing, of the wrong type or out of range",
    "invalid_json": "The request body is not JSON of the expected shape",
    "invalid_token": "A reward token is malformed or its signature does not verify",
    "method_not_allowed": "The route does not take this HTTP method",
    "not_found": "The addressed resource does not exist",
    "open_time_out_of_range": "The grant's open_time_ms is outside the accepted retry horizon",
    "order_conflict": "The order id exists with different content",
    "outside_activity_window": "The request time falls in none of the activity's child windows",
    "overlapping_windows": "Two child activities' time windows overlap",
    "payload_too_large": "The request body exceeds the size limit",
    "payout_failed": "The payout provider refused the transfer; the debit was refunded",
    "payout_unavailable": "No payout provider is configured for this deployment: withdrawals are refused before any "
                          "debit",
    "rate_limited": "The scene's grant rate limit is exhausted for now",
    "route_not_found": "No route answers this path",
    "scene_not_found": "The activity has no scene with this id",
    "sold_out": "Every counter shard of the scene is full: nothing was written",
    "storage_unavailable": "The database failed for a reason a retry may cure",
    "switched_off": "A degradation switch currently refuses this operation",
    "switch_name_retired": "The switch name uses the retired grants.<activity>.<scene> form",
    "total_below_consumed": "A new stock/budget total is smaller than what is already consumed",
    "unknown_tp_app": "No credentials are configured for this third-party-platform app id",
    "unsupported_media_type": "The request's Content-Type is not one the route takes",
    "withdrawal_conflict": "The withdrawal request id exists with a different amount",
    "withdrawal_not_found": "No withdrawal with this request id exists in the wallet",
    "play_app_not_found": "No play app with this id is configured",
    "anchor_not_found": "This anchor has no identity code yet",
    "play_app_exists": "A play app with this id already exists (use rotate-key or PUT to change it)",
    "sandbox_immutable": "A play app's sandbox flag cannot change: sandbox and live money never share an app",
    "code_room_conflict": "The anchor's identity code is bound to another room",
    "live_event_conflict": "A live event with this msg_id was received with different content",
    "sandbox_only": "A test event was sent to a room whose running game belongs to a non-sandbox app",
}
# Errors whose cause is internal: a fixed detail, no details.
FIXED_DETAIL = {"rejected": "callback rejected", "storage_unavailable": "a backing service is unavailable; retry later",
                "internal_error": "internal error"}
IDENT_PROBLEM = "must be 1-64 characters of letters, digits, '.' or '-', starting with a letter or digit"


def problem(code: str, detail: str | None = None, **details: Any) -> dict[str, Any]:
    """The exact problem body for `code`; for invalid_field without `errors`, one error from the detail."""
    if code in FIXED_DETAIL:
        return {"type": f"urn:rewardgate:problem:{code}", "title": TITLES[code], "status": STATUS[code],
                "code": code, "detail": FIXED_DETAIL[code]}
    body = {"type": f"urn:rewardgate:problem:{code}", "title": TITLES[code], "status": STATUS[code], "code": code,
            "detail": detail, **details}
    if code == "invalid_field" and "errors" not in details:
        field, problem_text = detail.split(": ", 1)
        body["errors"] = [{"field": field, "problem": problem_text}]
    return body


def invalid(*errors: tuple[str, str]) -> dict[str, Any]:
    """The 400 invalid_field body listing every (field, problem), in order."""
    return problem("invalid_field", "; ".join(f"{f}: {p}" for f, p in errors), field=errors[0][0],
                   errors=[{"field": f, "problem": p} for f, p in errors])
