"""Interactive play's `/v1` edge (play apps, identity codes, live events, settlement) and its schedules.

Ids in paths are positive integers up to 2^53 - 1 (Bilibili's app, room and user ids); bodies and queries are
the typed models of `chalicelib.play.models`, validated by the edge before a view runs.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from chalice import Blueprint, Rate

from chalicelib import clock, deadline
from chalicelib import errors as e
from chalicelib.edge.fields import validated
from chalicelib.edge.registry import ADMIN, PLATFORM, READ, PathParam, operation, read_object
from chalicelib.http import current_request, json_response
from chalicelib.observability import logger
from chalicelib.play import anchors, apps, bills, games, ingest, security
from chalicelib.play.bans import banned
from chalicelib.play.models import (
    MAX_ID,
    BanView,
    CodeRequest,
    CodeView,
    IngestAnswer,
    LiveEventsBody,
    LiveEventsIn,
    PlayAppPut,
    PlayAppsView,
    PlayAppView,
    SettlementQuery,
    SettlementView,
)

bp = Blueprint(__name__)

# The bills schedule's own time limit: well inside the function's 120 s timeout.
BILLS_BUDGET_S = 90
EVENTS_MAX_BODY = 1024 * 1024
ID_PROBLEM = f"must be a positive integer up to {MAX_ID}"
# 1-16 digits without a leading zero; the view refuses the 16-digit ones above MAX_ID (`_id`).
ID_PARAM = PathParam(pattern=r"^[1-9][0-9]{0,15}$", problem=ID_PROBLEM)
APP_ID = {"app_id": ID_PARAM}


def _id(value: str, field: str) -> int:
    number = int(value)  # the path parameter matched ID_PARAM
    if number > MAX_ID:
        raise e.InvalidField(field, ID_PROBLEM)
    return number


# Days whose UTC+8 start and end are times the store can hold (from the epoch on) and `datetime` can reach
# (9999-12-31's end is past its last day): 0001-01-01 overflowed into a 500 before.
FIRST_DAY, LAST_DAY = date(1970, 1, 2), date(9999, 12, 30)


def _day(value: str) -> str:
    """A settlement day (already a valid YYYY-MM-DD by the query model) inside the days that can be settled."""
    if not FIRST_DAY <= date.fromisoformat(value) <= LAST_DAY:
        raise e.InvalidField("day", f"must be a day from {FIRST_DAY} to {LAST_DAY}")
    return value


def _app_view(app: apps.PlayApp) -> dict[str, Any]:
    state = security.ban_state(app.app_id)
    ban = BanView(offences=state.offences, banned_until_ms=state.banned_until_ms,
                  banned=banned(state, clock.now_ms()))
    return app.view(ban).model_dump()


@operation(bp, "PUT", "/v1/admin/play-apps/{app_id}", summary="Create or replace a play app", access=ADMIN,
           body=PlayAppPut, responses={200: PlayAppView}, path_params=APP_ID, audit="play_app.put",
           errors=(e.SandboxImmutable, e.ConfigConflict))
def put_play_app(app_id: str, body: PlayAppPut) -> Any:
    """Create or replace a play app's configuration (a share change takes effect after the cache delay)."""
    return json_response(_app_view(apps.put_app(_id(app_id, "app_id"), body)))


@operation(bp, "GET", "/v1/admin/play-apps/{app_id}", summary="A play app", access=READ,
           responses={200: PlayAppView}, path_params=APP_ID, errors=(e.PlayAppNotFound,))
def get_play_app(app_id: str) -> Any:
    """A play app with its ratio history and its security-centre state."""
    return json_response(_app_view(apps.get_app_uncached(_id(app_id, "app_id"))))


@operation(bp, "GET", "/v1/admin/play-apps", summary="Every play app", access=READ, responses={200: PlayAppsView})
def list_play_apps() -> Any:
    """Every play app with its ratio history and its security-centre state."""
    return json_response({"play_apps": [_app_view(app) for app in apps.list_apps()]})


@operation(bp, "POST", "/v1/play/anchors/{anchor_id}/code", summary="A streamer's identity code", access=PLATFORM,
           body=CodeRequest, responses={200: CodeView}, path_params={"anchor_id": ID_PARAM},
           errors=(e.CodeRoomConflict, e.ConfigConflict))
def anchor_code(anchor_id: str, body: CodeRequest) -> Any:
    """The anchor's identity code for its room (the same until refreshed)."""
    return json_response(anchors.issue_code(_id(anchor_id, "anchor_id"), body.room_id, body.uname).model_dump())


@operation(bp, "POST", "/v1/play/anchors/{anchor_id}/code/refresh", summary="A new identity code", access=PLATFORM,
           responses={200: CodeView}, path_params={"anchor_id": ID_PARAM},
           errors=(e.AnchorNotFound, e.ConfigConflict))
def refresh_anchor_code(anchor_id: str) -> Any:
    """A new identity code; the previous one stops working at once (running games go on)."""
    return json_response(anchors.refresh_code(_id(anchor_id, "anchor_id")).model_dump())


@operation(bp, "POST", "/v1/play/rooms/{room_id}/events", summary="Live messages of a room", access=PLATFORM,
           body=LiveEventsBody, parse_body=False, max_body_bytes=EVENTS_MAX_BODY,
           responses={200: IngestAnswer},
           path_params={"room_id": ID_PARAM}, errors=(e.LiveEventConflict, e.SandboxOnly))
def room_events(room_id: str) -> Any:
    """Live messages from the platform for a room: `{cmd, data}` or `{events: [...]}` (`test` for the debug tool).

    Each message is appended once to the room's running game (deduplicated by `msg_id`) and its interactive
    gifts settled; a batch answers per message, the single form answers a conflicting repeat with 409.
    """
    room = _id(room_id, "room_id")
    value = read_object(current_request().raw_body, EVENTS_MAX_BODY)
    body = validated(LiveEventsBody.form_of(value), value)
    if isinstance(body, LiveEventsIn):
        incoming = ingest.parse_events(room, body.events, body.test, prefix="events")
        results = ingest.ingest(room, incoming, body.test)
        return json_response({"results": [r.model_dump() for r in results]})
    result = ingest.ingest(room, ingest.parse_events(room, [body], body.test), body.test)[0]
    if result.status == ingest.CONFLICT:
        raise e.LiveEventConflict(f"msg_id {result.msg_id} was received with different content",
                                  msg_id=result.msg_id, game_id=result.game_id, seq=result.seq)
    return json_response(result.model_dump())


@operation(bp, "GET", "/v1/play-apps/{app_id}/settlement", summary="A play app's settlement of a day", access=READ,
           query=SettlementQuery, responses={200: SettlementView}, path_params=APP_ID,
           errors=(e.PlayAppNotFound,))
def app_settlement(app_id: str, query: SettlementQuery) -> Any:
    """A day's settlement (UTC+8): gifts, revenue, developer share, ratio versions; closed or running."""
    return json_response(bills.settlement_view(_id(app_id, "app_id"), _day(query.day)).model_dump())


@bp.schedule(Rate(1, unit=Rate.MINUTES))
def play_sweeper(event: Any) -> dict:
    """End games whose heartbeat deadline passed (reads do it too; this catches games nobody reads)."""
    with deadline.bounded(getattr(event, "context", None)):
        return {"ended": games.sweep()}


@bp.schedule(Rate(10, unit=Rate.MINUTES))
def play_bills(event: Any) -> dict:
    """Close the days that are due (00:30 UTC+8) and place their credits."""
    with deadline.bounded(getattr(event, "context", None)):
        report = bills.close_due(deadline_s=BILLS_BUDGET_S)
    if report.held:
        security.metric("PlayBillsHeld", None)
    logger.info("play bills", extra=report.body())
    return report.body()

