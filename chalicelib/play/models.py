"""Request and response models of interactive play (pydantic v2), and the live messages' fields.

`/v1` request models are the edge's (`chalicelib.edge.models.RequestModel`: strict types, unknown fields
refused); the edge reports every invalid field at once (`400 invalid_field`). The `/v2/app/*` bodies follow
what open-live clients send (Bilibili's own field names; unknown fields ignored, numbers given as digit
strings accepted), so unchanged clients keep working. Live messages (`data`) are checked on the fields
rewardgate relies on (ids, money) and keep every other field verbatim: the platform adds fields over time.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from chalicelib.edge.models import MAX_SAFE_INT, QueryModel, RequestModel, ResponseModel
from chalicelib.errors import OpenLiveBadRequest

MAX_ID = MAX_SAFE_INT  # JSON numbers beyond this lose precision in many clients
M = TypeVar("M", bound=BaseModel)

PositiveId = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
Amount = Annotated[StrictInt, Field(ge=0, le=10**12)]
Text64 = Annotated[StrictStr, Field(min_length=1, max_length=64)]


class _Open(BaseModel):
    # The signature covers the body but not the path (Bilibili's scheme): a body must fit one API only, so
    # fields an API does not take are refused (4000, named), never ignored (issue 24).
    model_config = ConfigDict(extra="forbid")


class _Message(BaseModel):
    # Strict on the declared fields; every other field of the platform's message is kept as sent.
    model_config = ConfigDict(strict=True, extra="allow")


def parse_open_live(model: type[M], value: Any) -> M:
    """Validate a `/v2/app/*` body; `OpenLiveBadRequest` (Bilibili 4000) naming every invalid field."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        listed = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                           for e in exc.errors(include_url=False))
        raise OpenLiveBadRequest(f"invalid parameters: {listed}") from None


# --- play apps ---------------------------------------------------------------------------------


class Limits(RequestModel):
    """Per-API rate limits (calls per second) and the ban policy; any left out keeps its default."""

    start: Annotated[StrictInt, Field(ge=1, le=100_000)] | None = None
    heartbeat: Annotated[StrictInt, Field(ge=1, le=100_000)] | None = None
    batchHeartbeat: Annotated[StrictInt, Field(ge=1, le=100_000)] | None = None
    end: Annotated[StrictInt, Field(ge=1, le=100_000)] | None = None
    events: Annotated[StrictInt, Field(ge=1, le=100_000)] | None = None
    ban_base_s: Annotated[StrictInt, Field(ge=1, le=30 * 24 * 3600)] | None = None
    ban_cap_s: Annotated[StrictInt, Field(ge=1, le=365 * 24 * 3600)] | None = None
    ban_quiet_s: Annotated[StrictInt, Field(ge=1, le=365 * 24 * 3600)] | None = None

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> Limits:
        if self.ban_base_s is not None and self.ban_cap_s is not None and self.ban_cap_s < self.ban_base_s:
            raise ValueError("ban_cap_s must be at least ban_base_s")
        return self


class PlayAppPut(RequestModel):
    """`PUT /v1/admin/play-apps/{app_id}`."""

    name: Text64
    share_bp: Annotated[StrictInt, Field(ge=0, le=10_000)]
    interactive_gift_ids: Annotated[list[PositiveId], Field(max_length=500)]
    sandbox: StrictBool = False
    limits: Limits | None = None

    @model_validator(mode="after")
    def _unique_gifts(self) -> PlayAppPut:
        if len(set(self.interactive_gift_ids)) != len(self.interactive_gift_ids):
            raise ValueError("interactive_gift_ids must not repeat a gift id")
        return self


class RatioView(ResponseModel):
    """One version of the revenue share."""

    version: int
    share_bp: int
    effective_from_ms: int


class BanView(ResponseModel):
    """The security centre's view of an app."""

    offences: int
    banned_until_ms: int
    banned: bool


class PlayAppView(ResponseModel):
    """A play app as the admin API shows it (never its secret)."""

    app_id: int
    name: str
    share_bp: int
    ratio_version: int
    ratios: list[RatioView]
    interactive_gift_ids: list[int]
    sandbox: bool
    limits: dict[str, int]
    access_key_id: str | None
    created_at_ms: int
    updated_at_ms: int
    security: BanView | None = None


class PlayAppsView(ResponseModel):
    """`GET /v1/admin/play-apps`: every play app."""

    play_apps: list[PlayAppView]


# --- identity codes ----------------------------------------------------------------------------


class CodeRequest(RequestModel):
    """`POST /v1/play/anchors/{anchor_id}/code`."""

    room_id: PositiveId
    uname: Annotated[StrictStr, Field(max_length=64)] | None = None


class CodeView(ResponseModel):
    """An anchor's identity code (shown to the anchor only)."""

    anchor_id: int
    room_id: int
    code: str
    generation: int


# --- live events -------------------------------------------------------------------------------

DM = "LIVE_OPEN_PLATFORM_DM"
SEND_GIFT = "LIVE_OPEN_PLATFORM_SEND_GIFT"
GUARD = "LIVE_OPEN_PLATFORM_GUARD"
SUPER_CHAT = "LIVE_OPEN_PLATFORM_SUPER_CHAT"
SUPER_CHAT_DEL = "LIVE_OPEN_PLATFORM_SUPER_CHAT_DEL"
LIKE = "LIVE_OPEN_PLATFORM_LIKE"
INTERACTION_END = "LIVE_OPEN_PLATFORM_INTERACTION_END"
SEQ_SKIPPED = "RG_SEQ_SKIPPED"
LiveCmd = Literal[
    "LIVE_OPEN_PLATFORM_DM", "LIVE_OPEN_PLATFORM_SEND_GIFT", "LIVE_OPEN_PLATFORM_GUARD",
    "LIVE_OPEN_PLATFORM_SUPER_CHAT", "LIVE_OPEN_PLATFORM_SUPER_CHAT_DEL", "LIVE_OPEN_PLATFORM_LIKE",
]
MsgId = Annotated[StrictStr, Field(min_length=1, max_length=128)]
Name = Annotated[StrictStr, Field(max_length=128)]


class _Common(_Message):
    msg_id: MsgId
    room_id: PositiveId | None = None
    timestamp: Annotated[StrictInt, Field(ge=0)] | None = None


class DanmakuData(_Common):
    """LIVE_OPEN_PLATFORM_DM."""

    open_id: Name
    uname: Name
    msg: Annotated[StrictStr, Field(max_length=1000)]
    dm_type: Annotated[StrictInt, Field(ge=0, le=1)] = 0


class GiftData(_Common):
    """LIVE_OPEN_PLATFORM_SEND_GIFT (`price` per gift in the platform's unit: 1 000 = ¥1)."""

    open_id: Name
    uname: Name
    gift_id: PositiveId
    gift_name: Name
    gift_num: Annotated[StrictInt, Field(ge=1, le=1_000_000)]
    price: Annotated[StrictInt, Field(ge=0, le=10**9)]
    paid: StrictBool
    r_price: Annotated[StrictInt, Field(ge=0, le=10**9)] | None = None


class GuardUser(_Message):
    """The buyer of a guard."""

    open_id: Name
    uname: Name


class GuardData(_Common):
    """LIVE_OPEN_PLATFORM_GUARD."""

    user_info: GuardUser
    guard_level: Annotated[StrictInt, Field(ge=1, le=3)]
    guard_num: Annotated[StrictInt, Field(ge=1, le=10_000)]
    guard_unit: Annotated[StrictStr, Field(max_length=16)]
    price: Amount


class SuperChatData(_Common):
    """LIVE_OPEN_PLATFORM_SUPER_CHAT."""

    open_id: Name
    uname: Name
    message_id: PositiveId
    message: Annotated[StrictStr, Field(max_length=1000)]
    rmb: Amount
    start_time: Annotated[StrictInt, Field(ge=0)]
    end_time: Annotated[StrictInt, Field(ge=0)]


class SuperChatDelData(_Common):
    """LIVE_OPEN_PLATFORM_SUPER_CHAT_DEL."""

    message_ids: Annotated[list[PositiveId], Field(min_length=1, max_length=100)]


class LikeData(_Common):
    """LIVE_OPEN_PLATFORM_LIKE."""

    open_id: Name
    uname: Name
    like_count: Annotated[StrictInt, Field(ge=1, le=1_000_000)]


DATA_MODELS: dict[str, type[_Common]] = {
    DM: DanmakuData, SEND_GIFT: GiftData, GUARD: GuardData, SUPER_CHAT: SuperChatData,
    SUPER_CHAT_DEL: SuperChatDelData, LIKE: LikeData,
}


class LiveEventIn(RequestModel):
    """One live message from the platform: Bilibili's `cmd` and its `data`."""

    cmd: LiveCmd
    data: dict[str, Any]


class LiveEventsIn(RequestModel):
    """`POST /v1/play/rooms/{room_id}/events`, batch form; `test` marks debug-tool events."""

    events: Annotated[list[LiveEventIn], Field(min_length=1, max_length=100)]
    test: StrictBool = False


class LiveEventOne(LiveEventIn):
    """`POST /v1/play/rooms/{room_id}/events`, single form."""

    test: StrictBool = False


class LiveEventsBody(RootModel[LiveEventOne | LiveEventsIn]):
    """`POST /v1/play/rooms/{room_id}/events`: one live message, or a batch of 1-100 (`events`).

    Documentation only: the route picks the form by the body's shape (`events` present or not) and reports
    the invalid fields of that form alone (`form_of`).
    """

    @staticmethod
    def form_of(value: dict[str, Any]) -> type[LiveEventOne] | type[LiveEventsIn]:
        """The model a JSON object is validated against: the batch form when it has `events`."""
        return LiveEventsIn if "events" in value else LiveEventOne


class IngestResult(ResponseModel):
    """What happened to one live message."""

    msg_id: str
    status: Literal["appended", "duplicate", "no_game", "conflict"]
    game_id: str | None = None
    seq: int | None = None
    settled: bool = False


class IngestResults(ResponseModel):
    """The batch form's answer, in request order."""

    results: list[IngestResult]


class IngestAnswer(RootModel[IngestResult | IngestResults]):
    """The single form's answer (what happened to the message), or the batch form's (to each, in order)."""


# --- settlement ---------------------------------------------------------------------------------


class CreditView(ResponseModel):
    """How a closed bill reached the developer's wallet."""

    order_id: str | None
    activity_id: str
    wallet_act_id: str
    amount_fen: int
    status: Literal["PENDING", "PLACED", "NONE"]


DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


class SettlementQuery(QueryModel):
    """`GET /v1/play-apps/{app_id}/settlement?day=YYYY-MM-DD`."""

    day: Annotated[str, Field(pattern=DAY_PATTERN, description="a UTC+8 calendar day, like 2026-11-22")]

    @field_validator("day")
    @classmethod
    def _calendar_day(cls, value: str) -> str:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise ValueError("is not a calendar day") from None
        return value


class SettlementView(ResponseModel):
    """`GET /v1/play-apps/{app_id}/settlement?day=YYYY-MM-DD` (amounts in platform units, 1 000 = ¥1)."""

    app_id: int
    day: str
    gifts: int
    revenue: int
    developer_share: int
    closed: bool
    ratio_versions: list[int]
    closes_at_ms: int
    cumulative_share: int | None = None
    credit: CreditView | None = None


# --- the /v2/app/* bodies -------------------------------------------------------------------------

GameId = Annotated[str, Field(min_length=1, max_length=64)]


class StartBody(_Open):
    """`POST /v2/app/start`."""

    code: Annotated[str, Field(min_length=1, max_length=64)]
    app_id: Annotated[int, Field(ge=1, le=MAX_ID)]


class HeartbeatBody(_Open):
    """`POST /v2/app/heartbeat`."""

    game_id: GameId


class BatchHeartbeatBody(_Open):
    """`POST /v2/app/batchHeartbeat` (the 200-id limit is answered with 7004, not 4000)."""

    game_ids: Annotated[list[GameId], Field(max_length=10_000)]


class EndBody(_Open):
    """`POST /v2/app/end`."""

    app_id: Annotated[int, Field(ge=1, le=MAX_ID)]
    game_id: GameId


class EventsBody(_Open):
    """`POST /v2/app/events` (pull): the game's events after `after_seq`, oldest first. `after_seq` is required
    (0 for the first pull), so that no heartbeat body (`{game_id}`), signed for another path, is a pull."""

    game_id: GameId
    after_seq: Annotated[int, Field(ge=0, le=MAX_ID)]
    limit: Annotated[int, Field(ge=1, le=100)] = 100


# --- the /v2/app/* answers (Bilibili's envelope) ----------------------------------------------------


class Empty(BaseModel):
    """`data` of a refusal, and of a heartbeat or end that succeeded: `{}`."""

    model_config = ConfigDict(extra="forbid")


class GameInfo(ResponseModel):
    """The game a start found or began."""

    game_id: str


class WebsocketInfo(ResponseModel):
    """How the play connects for pushed events: its signed auth body and the links to try."""

    auth_body: str
    wss_link: list[str]


class AnchorInfo(ResponseModel):
    """The streamer of the room (`open_id`: the anchor as this app sees it)."""

    room_id: int
    uname: str | None
    uface: str | None
    uid: int
    open_id: str


class StartData(ResponseModel):
    """`data` of a start."""

    game_info: GameInfo
    websocket_info: WebsocketInfo
    anchor_info: AnchorInfo


class BatchHeartbeatData(ResponseModel):
    """`data` of a batch heartbeat: the games that are not running (the others were kept alive)."""

    failed_game_ids: list[str]


class LiveEventOut(ResponseModel):
    """One event of a game's stream, as the play receives it."""

    seq: int
    cmd: str
    data: dict[str, Any]


class EventsData(ResponseModel):
    """`data` of a pull: events after `after_seq`, oldest first; continue with `after_seq = next_seq - 1`."""

    events: list[LiveEventOut]
    next_seq: int
    game_status: str


class OpenLiveAnswer(ResponseModel):
    """Bilibili's envelope: `code` 0 is success; 4000-4013 a refused request, 7000-7007 a game's state,
    5000 a fault to retry (HTTP 503 or 500); `data` is `{}` unless the call succeeded."""

    code: int
    message: str
    request_id: str
    data: Empty


class StartAnswer(OpenLiveAnswer):
    """The answer of `POST /v2/app/start`."""

    data: StartData | Empty  # type: ignore[assignment]


class BatchHeartbeatAnswer(OpenLiveAnswer):
    """The answer of `POST /v2/app/batchHeartbeat`."""

    data: BatchHeartbeatData | Empty  # type: ignore[assignment]


class EventsAnswer(OpenLiveAnswer):
    """The answer of `POST /v2/app/events`."""

    data: EventsData | Empty  # type: ignore[assignment]
