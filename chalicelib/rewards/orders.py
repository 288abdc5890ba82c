"""The reward order: what a grant decides, how it is stored, and the credit message that carries it.

`decide_order` is pure: given a validated request, the configuration and the time, it fixes every
fact of the order (id, key, wallet, asset, hour bucket). The credit message carries those facts so the
crediting worker needs no read before its transaction; the transaction's condition checks them
against the stored order, so a message can never credit anything the order does not say.

An order is stored as its wallet's ledger credit: the item (`wallet_id`, `credit#{order_id}`) of the
ledger table, pending until it is credited. `order_key` (`{ns}#{order_id}`) stays its logical name (shard
choice, report ids); `ref` (`{wallet_id}|{order_id}`) is what finds it in storage.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from chalicelib import clock, validate
from chalicelib.errors import AmountOverCap, AwardTypeMismatch, InvalidField, OpenTimeOutOfRange, PoisonMessage
from chalicelib.rewards import ids
from chalicelib.rewards.config import OPEN_TIME_AHEAD_MS, Activity, Child, Scene
from chalicelib.rewards.tables import ACCEPTED, CREDIT, STATUS_NAMES, LedgerEntry

GRANT_FIELDS = ("activity_id", "scene_id", "act_id", "rain_id", "award_type", "stage", "amount", "open_time_ms")
MESSAGE_VERSION = 1


@dataclass(frozen=True)
class GrantRequest:
    """A validated grant request."""

    activity_id: str
    scene_id: str
    act_id: str
    rain_id: str
    award_type: str
    stage: str
    amount: int
    # When the reward was won; it chooses the child activity. None: the server's time at the attempt.
    open_time_ms: int | None = None


def parse_grant(body: Any) -> GrantRequest:
    """Validate one grant request body; the error names the first bad field."""
    if not isinstance(body, dict):
        raise InvalidField("grant", "must be a JSON object")
    validate.no_unknown_fields(body, GRANT_FIELDS)
    return GrantRequest(
        activity_id=validate.ident(body, "activity_id"),
        scene_id=validate.ident(body, "scene_id"),
        act_id=validate.ident(body, "act_id"),
        rain_id=validate.ident(body, "rain_id"),
        award_type=validate.choice(body, "award_type", ids.AWARD_TYPES),
        stage=validate.ident(body, "stage"),
        amount=validate.integer(body, "amount", minimum=1),
        open_time_ms=validate.integer(body, "open_time_ms"),
    )


def open_time_window(now_ms: int, horizon_s: int) -> tuple[int, int]:
    """The accepted [earliest, latest] open_time_ms of a grant arriving at `now_ms`."""
    return now_ms - horizon_s * 1000, now_ms + OPEN_TIME_AHEAD_MS


def open_time_of(request: GrantRequest, now_ms: int, horizon_s: int) -> int:
    """The instant that chooses a grant's child: its open_time_ms if given and in the window, else now."""
    if request.open_time_ms is None:
        return now_ms
    earliest, latest = open_time_window(now_ms, horizon_s)
    if not earliest <= request.open_time_ms <= latest:
        raise OpenTimeOutOfRange(
            f"open_time_ms {request.open_time_ms} is outside the accepted window [{earliest}, {latest}]: at most "
            f"{horizon_s} s before the server's time and {OPEN_TIME_AHEAD_MS // 1000} s after it",
            field="open_time_ms", open_time_ms=request.open_time_ms, earliest_ms=earliest, latest_ms=latest,
        )
    return request.open_time_ms


def credit_entry_key(order_id: str) -> str:
    """Ledger key of an order (its wallet's credit entry): at most one per order, by construction."""
    return f"{CREDIT}#{order_id}"


def order_ref(wallet_id: str, order_id: str) -> str:
    """`{wallet_id}|{order_id}`: an order's storage address as one string (`|` never occurs in either)."""
    return f"{wallet_id}|{order_id}"


def parse_ref(ref: str) -> tuple[str, str]:
    """(wallet_id, entry_key) of an order ref."""
    wallet_id, _, order_id = ref.partition("|")
    return wallet_id, credit_entry_key(order_id)


def order_id_of(entry_key: str) -> str:
    """The order id a credit entry key names."""
    return entry_key.split("#", 1)[1]


@dataclass(frozen=True)
class Order:
    """Every fact of one reward order."""

    order_id: str
    activity_id: str
    sub_activity_id: str
    scene_id: str
    act_id: str
    rain_id: str
    award_type: str
    stage: str
    amount: int
    asset: str
    wallet_id: str
    order_cap: int
    created_at_ms: int
    open_time_ms: int
    hour: str
    hour_bucket: str
    bill_text: str
    status: int = ACCEPTED
    shard: int | None = None
    credited_at_ms: int | None = None
    reconcile: bool = True  # its scene's `reconcile` when placed, pinned (reconciliation reports it if True)

    @property
    def order_key(self) -> str:
        """The order's logical name in its child activity: `{ns}#{order_id}`."""
        return ids.order_key(self.ns, self.order_id)

    @property
    def entry_key(self) -> str:
        """Its range key in the wallet's ledger partition: the order is the wallet's credit entry."""
        return credit_entry_key(self.order_id)

    @property
    def ref(self) -> str:
        """What finds the order in storage: `{wallet_id}|{order_id}`."""
        return order_ref(self.wallet_id, self.order_id)

    @property
    def ns(self) -> str:
        """The child-activity namespace the order lives in."""
        return ids.child_ns(self.activity_id, self.sub_activity_id)

    @property
    def status_name(self) -> str:
        """ACCEPTED, CREDITING or CREDITED."""
        return STATUS_NAMES.get(self.status, str(self.status))

    def same_content(self, other: Order, open_time_given: bool = True) -> bool:
        """Whether a repeated grant asks for exactly this order (the id already pins the rest).

        A repeat that names its open_time_ms must name this order's; one that does not (the server's time
        chose its child) matches whatever time the order was opened at.
        """
        return (self.order_key, self.amount, self.scene_id, self.activity_id) == (
            other.order_key, other.amount, other.scene_id, other.activity_id) and (
            not open_time_given or self.open_time_ms == other.open_time_ms)

    def token_claims(self, app_id: str) -> dict[str, Any]:
        """What the reward token states about this order."""
        return {
            "v": 1, "app_id": app_id, "activity_id": self.activity_id, "sub_activity_id": self.sub_activity_id,
            "act_id": self.act_id, "scene_id": self.scene_id, "award_type": self.award_type, "asset": self.asset,
            "amount": self.amount, "order_id": self.order_id, "open_time_ms": self.open_time_ms,
            "rain_id": self.rain_id, "stage": self.stage,
        }


def decide_order(request: GrantRequest, activity: Activity, child: Child, scene: Scene, now_ms: int,
                 hour_buckets: int, open_time_ms: int | None = None, enforce_cap: bool = True) -> Order:
    """The order a valid grant request creates (refusing an award-type mismatch or an amount over the cap).

    `child` is the one open at `open_time_ms` (default `now_ms`); the order's hour is `now_ms`'s, the hour
    it is written in, which is the hour reconciliation reads it in. Its award type and asset (so its wallet,
    part of its key) are the scene's terms at `open_time_ms`, never the scene's current ones: an identical
    retry after a change maps to the first attempt's key. `enforce_cap=False` decides the order a request
    names whatever the cap is now (to find an order placed under an earlier, higher cap).
    """
    opened = now_ms if open_time_ms is None else open_time_ms
    terms = scene.terms_at(opened)
    if request.award_type != terms.award_type:
        raise AwardTypeMismatch(
            f"scene {scene.scene_id} grants {terms.award_type}, not {request.award_type}",
            expected=terms.award_type,
        )
    if enforce_cap and request.amount > scene.order_cap:
        raise AmountOverCap(
            f"amount {request.amount} exceeds the per-order cap {scene.order_cap}", order_cap=scene.order_cap
        )
    ns = activity.ns(child)
    oid = ids.order_id(request.act_id, request.scene_id, request.rain_id, request.award_type, request.stage)
    hour = clock.hour_of(now_ms)
    wallet_id = ids.wallet_id(ns, request.act_id, terms.asset)
    return Order(
        order_id=oid, activity_id=activity.activity_id, sub_activity_id=child.sub_activity_id,
        scene_id=scene.scene_id, act_id=request.act_id, rain_id=request.rain_id, award_type=request.award_type,
        stage=request.stage, amount=request.amount, asset=terms.asset, wallet_id=wallet_id, order_cap=scene.order_cap,
        created_at_ms=now_ms, open_time_ms=opened, hour=hour,
        hour_bucket=ids.wallet_hour_bucket(hour, wallet_id, hour_buckets),
        bill_text=scene.bill_text, reconcile=scene.reconcile,
    )


def to_item(order: Order) -> LedgerEntry:
    """The order as a new ledger item: its wallet's credit entry, ACCEPTED and pending (not posted)."""
    return LedgerEntry(
        order.wallet_id, order.entry_key, kind=CREDIT, amount=order.amount, sub_activity_id=order.sub_activity_id,
        scene_id=order.scene_id, bill_text=order.bill_text or None, hour=order.hour, hour_bucket=order.hour_bucket,
        activity_id=order.activity_id, act_id=order.act_id, rain_id=order.rain_id, award_type=order.award_type,
        stage=order.stage, asset=order.asset, order_cap=order.order_cap, shard=order.shard, status=order.status,
        created_at_ms=order.created_at_ms, open_time_ms=order.open_time_ms, reconcile=order.reconcile,
    )


_ITEM_FIELDS = (
    "activity_id", "sub_activity_id", "scene_id", "act_id", "rain_id", "award_type",
    "stage", "amount", "asset", "wallet_id", "order_cap", "created_at_ms", "hour", "hour_bucket", "status",
    "shard", "credited_at_ms", "bill_text",
)


def from_fields(fields: dict[str, Any]) -> Order:
    """An order from its stored attributes (a PynamoDB item's or a raw cancellation item's)."""
    values = {name: fields.get(name) for name in _ITEM_FIELDS}
    values["order_id"] = order_id_of(fields["entry_key"])
    for name in ("amount", "order_cap", "created_at_ms", "status"):
        values[name] = int(values[name])
    for name in ("shard", "credited_at_ms"):
        values[name] = None if values[name] is None else int(values[name])
    values["bill_text"] = values["bill_text"] or ""
    opened = fields.get("open_time_ms")
    values["open_time_ms"] = values["created_at_ms"] if opened is None else int(opened)
    return Order(**values)


def from_item(item: LedgerEntry) -> Order:
    """An order from its ledger item."""
    return from_fields(item.attribute_values)


def public_view(order: Order, token: str | None) -> dict[str, Any]:
    """The order as the grant API answers it."""
    return {
        "order_id": order.order_id, "status": order.status_name, "token": token, "amount": order.amount,
        "asset": order.asset, "activity_id": order.activity_id, "sub_activity_id": order.sub_activity_id,
        "scene_id": order.scene_id, "act_id": order.act_id, "created_at_ms": order.created_at_ms,
    }


# --- credit messages -------------------------------------------------------------------------


def credit_message(order: Order) -> str:
    """The credit queue message for an order: its facts, so crediting needs no read first."""
    return json.dumps({"v": MESSAGE_VERSION, **asdict(order)}, separators=(",", ":"), sort_keys=True)


def parse_credit_message(body: str) -> Order:
    """The order a credit message carries; `PoisonMessage` when the message is not one."""
    try:
        data = json.loads(body)
        if data.pop("v") != MESSAGE_VERSION:
            raise ValueError("unknown message version")
        data.setdefault("open_time_ms", data.get("created_at_ms"))  # a message sent before it was carried
        data.pop("order_key", None)  # derived now; carried by messages of the orders-table layout
        return Order(**data)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise PoisonMessage(f"not a credit message: {exc}") from exc
