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
