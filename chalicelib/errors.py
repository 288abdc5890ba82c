"""Every error rewardgate raises on purpose, under one base.

Each error carries a stable machine `code` (the `error` field of the JSON body) and the facts a caller
needs in `details`. HTTP statuses are assigned only at the edge (`chalicelib.http`), never here.
Storage adapters translate PynamoDB/botocore failures into these (`raise SoldOut(...) from exc`).
"""

from __future__ import annotations

from typing import Any


class RewardgateError(Exception):
    """Base of every deliberate rewardgate error."""

    code = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        """The JSON body a client sees: `{"error": code, "message": ..., **details}`."""
        return {"error": self.code, "message": self.message, **self.details}


# --- request shape ---------------------------------------------------------------------------


class InvalidField(RewardgateError):
    """A request field is missing, of the wrong type or out of range."""

    code = "invalid_field"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", field=field)


class InvalidJson(RewardgateError):
    """The request body is not JSON of the expected shape."""

    code = "invalid_json"


class PayloadTooLarge(RewardgateError):
    """The request body exceeds the size limit."""

    code = "payload_too_large"


# --- callbacks -------------------------------------------------------------------------------


class UnknownTpApp(RewardgateError):
    """No credentials are configured for this third-party-platform app id."""

    code = "unknown_tp_app"


class CallbackRejected(RewardgateError):
    """A callback failed authentication (stale, forged, undecryptable): one generic answer."""

    code = "rejected"

    def __init__(self, reason: str) -> None:
        # The reason is for the log only; the client-facing body never carries it (no oracle).
        super().__init__("callback rejected")
        self.reason = reason

    def body(self) -> dict[str, Any]:
        """The one generic body every rejected callback gets."""
        return {"error": self.code}


class StorageUnavailable(RewardgateError):
    """The database failed for a reason a retry may cure."""

    code = "storage_unavailable"


# --- lookups ---------------------------------------------------------------------------------


class NotFound(RewardgateError):
    """The addressed resource does not exist."""

    code = "not_found"


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


# --- grants ----------------------------------------------------------------------------------


class SoldOut(RewardgateError):
    """Every counter shard of the scene is full: nothing was written."""

    code = "sold_out"


class OrderConflict(RewardgateError):
    """The order id exists with different content (TigerBeetle's exists_with_different_*)."""

    code = "order_conflict"


class AmountOverCap(RewardgateError):
    """The amount exceeds the scene's per-order cap."""

    code = "amount_over_cap"


class AwardTypeMismatch(RewardgateError):
    """The grant's award type differs from the scene's configured award type."""

    code = "award_type_mismatch"


class SwitchedOff(RewardgateError):
    """A degradation switch currently refuses this operation."""

    code = "switched_off"


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


# --- internal --------------------------------------------------------------------------------


class PoisonMessage(RewardgateError):
    """A queue message can never succeed (unknown order, mismatched facts); it must reach the DLQ."""

    code = "poison_message"


# --- interactive play (/v1 routes) -------------------------------------------------------------


class InvalidFields(InvalidField):
    """Several request fields are invalid; `fields` lists every one with its problem."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        first = problems[0]
        super().__init__(first["field"], first["problem"])
        self.message = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        self.details["fields"] = problems


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


# --- interactive play: the Bilibili-compatible signed API (/v2/app/*) ---------------------------


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
