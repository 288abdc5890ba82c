"""Interactive play's `/v1` edge (play apps, identity codes, live events, settlement) and its schedules."""

from __future__ import annotations

import re
from typing import Any

from chalice import Blueprint, Rate

from chalicelib import clock
from chalicelib.errors import InvalidField, LiveEventConflict
from chalicelib.http import api, json_object, json_response
from chalicelib.observability import logger
from chalicelib.play import anchors, apps, bills, games, ingest, security
from chalicelib.play.bans import banned
from chalicelib.play.models import (
    MAX_ID,
    BanView,
    CodeRequest,
    LiveEventOne,
    LiveEventsIn,
    PlayAppPut,
    parse,
)
from chalicelib.play.settlement import day_start_ms

bp = Blueprint(__name__)

DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# The bills schedule's own time limit: well inside the function's 120 s timeout.
BILLS_BUDGET_S = 90


def _id(value: str, field: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_ID or value.startswith("0"):
        raise InvalidField(field, f"must be a positive integer up to {MAX_ID}")
    return int(value)


def _app_view(app: apps.PlayApp) -> dict[str, Any]:
    state = security.ban_state(app.app_id)
    ban = BanView(offences=state.offences, banned_until_ms=state.banned_until_ms,
                  banned=banned(state, clock.now_ms()))
    return app.view(ban).model_dump()


@bp.route("/v1/admin/play-apps/{app_id}", methods=["PUT"])
@api
def put_play_app(app_id: str) -> Any:
    """Create or replace a play app's configuration (a share change takes effect after the cache delay)."""
    app_id_ = _id(app_id, "app_id")
    body = parse(PlayAppPut, json_object(bp.current_request.raw_body))
    return json_response(_app_view(apps.put_app(app_id_, body)))


@bp.route("/v1/admin/play-apps/{app_id}", methods=["GET"])
@api
def get_play_app(app_id: str) -> Any:
    """A play app with its ratio history and its security-centre state."""
    return json_response(_app_view(apps.get_app_uncached(_id(app_id, "app_id"))))


@bp.route("/v1/admin/play-apps", methods=["GET"])
@api
def list_play_apps() -> Any:
    """Every play app."""
    return json_response({"play_apps": [_app_view(app) for app in apps.list_apps()]})


@bp.route("/v1/play/anchors/{anchor_id}/code", methods=["POST"])
@api
def anchor_code(anchor_id: str) -> Any:
    """The anchor's identity code for its room (the same until refreshed)."""
    body = parse(CodeRequest, json_object(bp.current_request.raw_body))
    return json_response(anchors.issue_code(_id(anchor_id, "anchor_id"), body.room_id, body.uname).model_dump())


@bp.route("/v1/play/anchors/{anchor_id}/code/refresh", methods=["POST"])
@api
def refresh_anchor_code(anchor_id: str) -> Any:
    """A new identity code; the previous one stops working at once."""
    return json_response(anchors.refresh_code(_id(anchor_id, "anchor_id")).model_dump())


@bp.route("/v1/play/rooms/{room_id}/events", methods=["POST"])
@api
def room_events(room_id: str) -> Any:
    """Live messages from the platform for a room: `{cmd, data}` or `{events: [...]}` (`test` for the debug tool)."""
    room = _id(room_id, "room_id")
    body = json_object(bp.current_request.raw_body, max_bytes=1024 * 1024)
    if "events" in body:
        batch = parse(LiveEventsIn, body)
        incoming = [ingest.parse_event(room, event, batch.test, prefix=f"events.{i}.")
                    for i, event in enumerate(batch.events)]
        results = ingest.ingest(room, incoming, batch.test)
        return json_response({"results": [r.model_dump() for r in results]})
    one = parse(LiveEventOne, body)
    result = ingest.ingest(room, [ingest.parse_event(room, one, one.test)], one.test)[0]
    if result.status == ingest.CONFLICT:
        raise LiveEventConflict(f"msg_id {result.msg_id} was received with different content",
                                msg_id=result.msg_id, game_id=result.game_id, seq=result.seq)
    return json_response(result.model_dump())


@bp.route("/v1/play-apps/{app_id}/settlement", methods=["GET"])
@api
def app_settlement(app_id: str) -> Any:
    """A day's settlement (UTC+8): gifts, revenue, developer share, ratio versions; closed or running."""
    day = (bp.current_request.query_params or {}).get("day")
    if day is None or not DAY.fullmatch(day):
        raise InvalidField("day", "query parameter is required, like 2026-11-22 (a UTC+8 day)")
    try:
        day_start_ms(day)
    except ValueError:
        raise InvalidField("day", "is not a calendar day") from None
    return json_response(bills.settlement_view(_id(app_id, "app_id"), day).model_dump())


@bp.schedule(Rate(1, unit=Rate.MINUTES))
def play_sweeper(event: Any) -> dict:
    """End games whose heartbeat deadline passed (reads do it too; this catches games nobody reads)."""
    return {"ended": games.sweep()}


@bp.schedule(Rate(10, unit=Rate.MINUTES))
def play_bills(event: Any) -> dict:
    """Close the days that are due (00:30 UTC+8) and place their credits."""
    report = bills.close_due(deadline_s=BILLS_BUDGET_S)
    if report.held:
        security.metric("PlayBillsHeld", None)
    logger.info("play bills", extra=report.body())
    return report.body()
