"""A play bill's keys and ids: where its items live, which activity and wallet its credit goes to, its order ids.

Pure names, no I/O: the bills job (`bills`) writes with them and the bill checks (`bill_checks`) read with them.
"""

from __future__ import annotations

from chalicelib.play import apps, settlement
from chalicelib.play.config import play_settings

CURSOR_SK = "cursor"
BILL_SCENE = "bill"
BILL_CHILD = "formal"
BILL_TEXT = "Interactive play revenue share"
WALLET_PREFIX = "play-app-"
PENDING, PLACED, NONE = "PENDING", "PLACED", "NONE"
# Bills (fen) are bounded by the scene's per-order cap; this one is far above any day.
BILL_ORDER_CAP = 10**12
MAX_DAYS_PER_RUN = 62


def bill_pk(app_id: int) -> str:
    """Partition of an app's bills and its cursor."""
    return f"bill#{app_id}"


def wallet_act_id(app_id: int) -> str:
    """The act id whose wallet receives an app's bills."""
    return f"{WALLET_PREFIX}{app_id}"


def bill_activity(app: apps.PlayApp) -> str:
    """The rewards activity an app's bills are credited in (sandbox money never mixes with live money)."""
    return play_settings().sandbox_bill_activity if app.sandbox else play_settings().bill_activity


def credit_order_id(app_id: int, day: str, nonce: str) -> str:
    """The order id of a bill's credit, `play-app-{app_id}_bill_{YYYYMMDD}.{nonce}_cash_1`: unpredictable by its
    nonce (`internal.new_nonce`), recorded on the bill when it closes; sorted by day within the wallet."""
    from chalicelib.rewards import ids

    return ids.order_id(wallet_act_id(app_id), BILL_SCENE, f"{settlement.day_key(day)}.{nonce}", ids.CASH, "1")


def legacy_order_id(app_id: int, day: str) -> str:
    """The guessable order id bills closed before the internal credit path carry."""
    from chalicelib.rewards import ids

    return ids.order_id(wallet_act_id(app_id), BILL_SCENE, settlement.day_key(day), ids.CASH, "1")


def bill_wallet_id(activity_id: str, app_id: int) -> str:
    """The wallet an app's bills credit in `activity_id`."""
    from chalicelib.rewards import ids

    return ids.wallet_id(ids.child_ns(activity_id, BILL_CHILD), wallet_act_id(app_id), ids.CASH_ASSET)
