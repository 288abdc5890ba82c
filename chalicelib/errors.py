"""Every error rewardgate raises on purpose, under one base.

Each error carries a stable machine `code` (the `code` member of the RFC 9457 problem body), a
`message` (its `detail`) and the facts a caller needs in `details`. The first line of each class's
docstring is the problem's `title`. HTTP statuses and the problem body are assigned only at the edge
(`chalicelib.http`), never here. Storage adapters translate PynamoDB/botocore failures into these
(`raise SoldOut(...) from exc`).

An error whose cause is internal (`public = False`: storage, secrets) shows the caller only its code
and a generic detail; its message and details go to the log alone, so no body names a secret or a
botocore error code.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RewardgateError(Exception):
    """Base of every deliberate rewardgate error."""

    code = "error"
    # False: the message and details describe internals; the caller sees `public_detail` only.
    public: ClassVar[bool] = True
    public_detail: ClassVar[str] = ""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    @classmethod
    def title(cls) -> str:
        """The problem title: the first line of the class docstring (the same for every occurrence)."""
        return (cls.__doc__ or cls.code).strip().splitlines()[0].rstrip(".")

    def body(self) -> dict[str, Any]:
        """What a client may see of this error: `{"code", "detail", **details}` (internals withheld)."""
        if not self.public:
            return {"code": self.code, "detail": self.public_detail or self.title()}
        return {"code": self.code, "detail": self.message, **self.details}


# --- request shape ---------------------------------------------------------------------------


class InvalidField(RewardgateError):
    """A request field is missing, of the wrong type or out of range."""

    code = "invalid_field"

    def __init__(self, field: str, problem: str, errors: list[dict[str, str]] | None = None) -> None:
        # `field` names the first invalid field; `errors` lists every one as {field, problem}.
        errors = errors or [{"field": field, "problem": problem}]
        message = "; ".join(f"{e['field']}: {e['problem']}" for e in errors)
        super().__init__(message, field=field, errors=errors)


class InvalidJson(RewardgateError):
    """The request body is not JSON of the expected shape."""

    code = "invalid_json"


class PayloadTooLarge(RewardgateError):
    """The request body exceeds the size limit."""

    code = "payload_too_large"


class MethodNotAllowed(RewardgateError):
    """The route does not take this HTTP method."""

    code = "method_not_allowed"


class UnsupportedMediaType(RewardgateError):
    """The request's Content-Type is not one the route takes."""

    code = "unsupported_media_type"


# --- callbacks -------------------------------------------------------------------------------


class UnknownTpApp(RewardgateError):
    """No credentials are configured for this third-party-platform app id."""

    code = "unknown_tp_app"


class CallbackRejected(RewardgateError):
    """Callback rejected.

    A callback failed authentication (unknown tp app, stale, forged, undecryptable): every such callback
    gets the same status and body, so a prober learns nothing; the reason goes to the log only.
    """

    code = "rejected"
    public = False
    public_detail = "callback rejected"

    def __init__(self, reason: str) -> None:
        super().__init__("callback rejected")
        self.reason = reason


class StorageUnavailable(RewardgateError):
    """The database failed for a reason a retry may cure."""

    code = "storage_unavailable"
    public = False
    public_detail = "a backing service is unavailable; retry later"


# --- lookups ---------------------------------------------------------------------------------


class NotFound(RewardgateError):
    """The addressed resource does not exist."""

    code = "not_found"


class RouteNotFound(NotFound):
    """No route answers this path."""

    code = "route_not_found"


class WithdrawalNotFound(NotFound):
    """No withdrawal with this request id exists in the wallet."""

    code = "withdrawal_not_found"


class ActivityNotFound(NotFound):
    """No activity with this id is configured."""

    code = "activity_not_found"


class SceneNotFound(NotFound):
    """The activity has no scene with this id."""

    code = "scene_not_found"


class OutsideActivityWindow(NotFound):
    """The request time falls in none of the activity's child windows."""

    code = "outside_activity_window"


# --- configuration ---------------------------------------------------------------------------


class OverlappingWindows(RewardgateError):
    """Two child activities' time windows overlap."""

    code = "overlapping_windows"


class TotalBelowConsumed(RewardgateError):
    """A new stock/budget total is smaller than what is already consumed."""

    code = "total_below_consumed"


class ConfigConflict(RewardgateError):
    """The configuration changed concurrently; re-read and retry."""

    code = "config_conflict"


class AuditConflict(ConfigConflict):
    """A different audit record already exists under this record's key (same millisecond, same request id)."""

    code = "audit_conflict"


class AwardTypeImmutable(RewardgateError):
    """A scene's award type cannot change: create a new scene for another award type."""

    code = "award_type_immutable"


class ChildWindowMoved(RewardgateError):
    """The change would move an instant a grant may still name into another child activity."""

    code = "child_window_moved"


class StartedChildRemoved(RewardgateError):
    """A child activity whose window has started may hold orders and wallets: it cannot be removed or renamed."""

    code = "started_child_removed"


# --- grants ----------------------------------------------------------------------------------


class SoldOut(RewardgateError):
    """Every counter shard of the scene is full: nothing was written."""

    code = "sold_out"


class OrderConflict(RewardgateError):
    """The order id exists with different content.

    TigerBeetle's exists_with_different_*: a repeat with the same content is the original order.
    """

    code = "order_conflict"


class AmountOverCap(RewardgateError):
    """The amount exceeds the scene's per-order cap."""

    code = "amount_over_cap"


class AwardTypeMismatch(RewardgateError):
    """The grant's award type differs from the scene's configured award type."""

    code = "award_type_mismatch"


class OpenTimeOutOfRange(RewardgateError):
    """The grant's open_time_ms is outside the accepted retry horizon."""

    code = "open_time_out_of_range"


class SwitchedOff(RewardgateError):
    """A degradation switch currently refuses this operation."""

    code = "switched_off"


class SwitchNameRetired(RewardgateError):
    """The switch name uses the retired grants.<activity>.<scene> form."""

    code = "switch_name_retired"


class RateLimited(RewardgateError):
    """The scene's grant rate limit is exhausted for now."""

    code = "rate_limited"


class InvalidToken(RewardgateError):
    """A reward token is malformed or its signature does not verify."""

    code = "invalid_token"


# --- wallets ---------------------------------------------------------------------------------


class InsufficientBalance(RewardgateError):
    """The wallet balance is below the withdrawal amount: nothing was debited."""

    code = "insufficient_balance"


class WithdrawalConflict(RewardgateError):
    """The withdrawal request id exists with a different amount."""

    code = "withdrawal_conflict"


class PayoutUnavailable(RewardgateError):
    """No payout provider is configured for this deployment: withdrawals are refused before any debit."""

    code = "payout_unavailable"


class PayoutFailed(RewardgateError):
    """The payout provider refused the transfer; the debit was refunded."""

    code = "payout_failed"


class PayoutConflict(RewardgateError):
    """The payout provider holds this payout id with another recipient or amount; it paid nothing now."""

    code = "payout_conflict"


# --- interactive play ------------------------------------------------------------------------


class PlayConflict(RewardgateError):
    """The request contradicts what interactive play already holds (the subclass says what)."""

    code = "play_conflict"


class PlayAppExists(PlayConflict):
    """A play app with this id already exists (use rotate-key or PUT to change it)."""

    code = "play_app_exists"


class SandboxImmutable(PlayConflict):
    """A play app's sandbox flag cannot change: sandbox and live money never share an app."""

    code = "sandbox_immutable"


class CodeRoomConflict(PlayConflict):
    """The anchor's identity code is bound to another room."""

    code = "code_room_conflict"


class LiveEventConflict(PlayConflict):
    """A live event with this msg_id was received with different content."""

    code = "live_event_conflict"


class SandboxOnly(PlayConflict):
    """A test event was sent to a room whose running game belongs to a non-sandbox app."""

    code = "sandbox_only"


class PlayAppNotFound(NotFound):
    """No play app with this id is configured."""

    code = "play_app_not_found"


class AnchorNotFound(NotFound):
    """This anchor has no identity code yet."""

    code = "anchor_not_found"


# The Bilibili-compatible signed API (/v2/app/*) answers these in its envelope, by `bili_code`, at HTTP 200.


class OpenLiveError(RewardgateError):
    """An answer of the signed open-live API; `bili_code` is the Bilibili error code it carries."""

    bili_code = 5000
    code = "open_live_error"


class OpenLiveBadRequest(OpenLiveError):
    """A body field is missing or malformed (Bilibili 4000)."""

    bili_code = 4000


class OpenLiveInvalidApp(OpenLiveError):
    """The body's app_id is not the app the access key belongs to (Bilibili 4001)."""

    bili_code = 4001


class SignatureInvalid(OpenLiveError):
    """Unknown access key, missing signing header or a signature that does not verify (4002)."""

    bili_code = 4002


class TimestampOutOfWindow(OpenLiveError):
    """`x-bili-timestamp` is outside the accepted window (4003)."""

    bili_code = 4003


class NonceReplayed(OpenLiveError):
    """`x-bili-signature-nonce` was already used within the window (4004)."""

    bili_code = 4004


class PlayRateLimited(OpenLiveError):
    """The app exceeded an API's rate limit, or is banned by the security centre (4009)."""

    bili_code = 4009


class WrongContentType(OpenLiveError):
    """The request's Content-Type is not application/json (4011)."""

    bili_code = 4011


class ContentMd5Mismatch(OpenLiveError):
    """`x-bili-content-md5` is not the MD5 of the body (4012)."""

    bili_code = 4012


class WrongAccept(OpenLiveError):
    """The request's Accept header excludes application/json (4013)."""

    bili_code = 4013


class GameNotRunning(OpenLiveError):
    """The game does not exist, is not this app's, or has ended (7000)."""

    bili_code = 7000


class RoomCoolingDown(OpenLiveError):
    """The room's last game ended moments ago; a new one may start after the cooldown (7001)."""

    bili_code = 7001


class RoomBusy(OpenLiveError):
    """Another app's game is running in the room (7002)."""

    bili_code = 7002


class HeartbeatExpired(OpenLiveError):
    """The game received no heartbeat in time and was ended (7003)."""

    bili_code = 7003


class TooManyGameIds(OpenLiveError):
    """A batch heartbeat named more than 200 games (7004)."""

    bili_code = 7004


class DuplicateGameIds(OpenLiveError):
    """A batch heartbeat named a game more than once (7005)."""

    bili_code = 7005


class InvalidIdentityCode(OpenLiveError):
    """The identity code is unknown or was refreshed (7007)."""

    bili_code = 7007


# --- internal --------------------------------------------------------------------------------


class InternalError(RewardgateError):
    """An unexpected failure inside rewardgate."""

    code = "internal_error"
    public = False
    public_detail = "internal error"


class PoisonMessage(RewardgateError):
    """A queue message can never succeed (unknown order, mismatched facts); it must reach the DLQ."""

    code = "poison_message"
