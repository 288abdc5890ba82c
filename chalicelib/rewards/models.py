"""The rewards slice's HTTP contract: request and response models of grants, admin, wallets, keys.

These are the one schema: the routes validate requests against them and the OpenAPI document is
generated from them. Domain invariants that need more than one field or the stored state (windows
that overlap, a total below what is consumed) stay in the domain (`chalicelib.rewards.config`, ...).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from chalicelib.edge.models import (
    MAX_AMOUNT,
    Amount,
    Cursor,
    EpochMs,
    Ident,
    Problem,
    QueryModel,
    RequestModel,
    ResponseModel,
)
from chalicelib.rewards.namespace import PublicActivityId

AwardType = Literal["cash", "coupon"]
Purpose = Literal["internal_test", "gray_rehearsal", "formal"]
Asset = Annotated[str, StringConstraints(pattern=r"^(CNY|coupon:[A-Za-z0-9][A-Za-z0-9.-]{0,63})$")]
Token = Annotated[str, StringConstraints(max_length=4096)]
MAX_BATCH = 100


# --- grants -------------------------------------------------------------------------------------

class GrantBody(RequestModel):
    """One reward to grant. The order id `{act_id}_{scene_id}_{rain_id}_{award_type}_{stage}` makes it idempotent."""

    activity_id: PublicActivityId = Field(description="not an internal activity (the bill activities, rg-internal-*)")
    scene_id: Ident
    act_id: Ident = Field(description="the user's id in the activity")
    rain_id: Ident
    award_type: AwardType
    stage: Ident
    amount: Amount
    open_time_ms: EpochMs = Field(
        description="when the reward was won (required): it chooses the child activity, so an identical retry at "
                    "any later moment maps to the same order; send the same value on every retry. Accepted from "
                    "now - RG_GRANT_RETRY_HORIZON_S (86 400 s) to now + 300 s, else 422 open_time_out_of_range")


class GrantBatchBody(RequestModel):
    """Up to 100 grants; each item is validated and answered on its own."""

    grants: Annotated[list[Any], Field(min_length=1, max_length=MAX_BATCH, json_schema_extra={
        "items": {"$ref": "#/components/schemas/GrantBody"}})]


class GrantView(ResponseModel):
    """An order as the grant routes answer it."""

    order_id: str
    status: Literal["ACCEPTED", "CREDITING", "CREDITED"]
    token: str | None = Field(description="compact JWS (EdDSA); null while token_issuance is switched off")
    amount: int
    asset: str
    activity_id: str
    sub_activity_id: str
    scene_id: str
    act_id: str
    created_at_ms: int


class GrantResult(ResponseModel):
    """One item of a batch: the status and body the single route would answer."""

    index: int
    status: int
    body: GrantView | Problem


class GrantBatchView(ResponseModel):
    """The batch's results, in request order."""

    results: list[GrantResult]


# --- admin --------------------------------------------------------------------------------------

class ChildBody(RequestModel):
    """A child activity: a half-open time window [starts_at_ms, ends_at_ms) with one purpose."""

    sub_activity_id: Ident
    purpose: Purpose
    starts_at_ms: EpochMs
    ends_at_ms: EpochMs


class ActivityBody(RequestModel):
    """An activity and its child windows (1-16, not overlapping)."""

    name: Annotated[str, StringConstraints(max_length=128)] = ""
    children: Annotated[list[ChildBody], Field(min_length=1, max_length=16)]
    activity_id: Ident | None = Field(default=None, description="if given, must equal the path's")


class ActivityView(ResponseModel):
    """An activity as stored."""

    activity_id: str
    name: str
    children: list[ChildBody]


class SceneBody(RequestModel):
    """How a scene grants. `total` is required with stock control; `template_id` for coupon scenes only."""

    award_type: AwardType
    template_id: Ident | None = None
    order_cap: Annotated[int, Field(ge=1, le=MAX_AMOUNT)]
    total: Annotated[int, Field(ge=0, le=MAX_AMOUNT)] | None = None
    stock_control: bool = True
    shard_count: Annotated[int, Field(ge=1, le=4000)] = 4
    rate_limit_per_s: Annotated[int, Field(ge=0, le=10**9)] = 0
    reconcile: bool = True
    bill_text: Annotated[str, StringConstraints(max_length=128)] | None = None
    activity_id: Ident | None = Field(default=None, description="if given, must equal the path's")
    scene_id: Ident | None = Field(default=None, description="if given, must equal the path's")


class SceneView(ResponseModel):
    """A scene as stored, with its version."""

    activity_id: str
    scene_id: str
    award_type: AwardType
    template_id: str | None
    order_cap: int
    total: int
    stock_control: bool
    shard_count: int
    rate_limit_per_s: int
    reconcile: bool
    bill_text: str
    version: int


class ActivityWithScenes(ActivityView):
    """An activity with every scene."""

    scenes: list[SceneView]


class SwitchBody(RequestModel):
    """`{"enabled": bool}` for on/off switches, `{"percent": 0-100}` for withdrawal_gray_percent."""

    enabled: bool | None = None
    percent: Annotated[int, Field(ge=0, le=100)] | None = None


class SwitchView(ResponseModel):
    """A switch's new value."""

    name: str
    enabled: bool | None = None
    percent: int | None = None


class SwitchesView(ResponseModel):
    """Every switch that has been set (an absent switch is on)."""

    switches: dict[str, dict[str, Any]]


# --- reads --------------------------------------------------------------------------------------

class StockQuery(QueryModel):
    """Which child activity (default: the open one, else the latest started)."""

    sub_activity_id: Ident | None = None


class StockView(ResponseModel):
    """A scene's stock or budget in one child activity, summed over its shards."""

    activity_id: str
    scene_id: str
    sub_activity_id: str
    stock_control: bool
    asset: str
    total: int | None = None
    consumed: int | None = None
    remaining: int | None = None
    remaining_ratio: float | None = Field(default=None, description="remaining ÷ total, 4 decimals (not money)")


class Distributed(ResponseModel):
    """What one child activity credited of one asset."""

    amount: int
    rewards: int


class ChildTotals(ResponseModel):
    """A child activity's total distributed per asset."""

    sub_activity_id: str
    purpose: str
    distributed: dict[str, Distributed]


class TotalsView(ResponseModel):
    """Total distributed per child activity and asset."""

    activity_id: str
    children: list[ChildTotals]


class PublicKey(ResponseModel):
    """A reward-token public key (raw Ed25519, base64url)."""

    kid: str
    alg: str
    public_key: str


class KeysView(ResponseModel):
    """The reward-token public keys, current first (legacy form; see /.well-known/jwks.json)."""

    alg: str
    current_kid: str
    keys: list[PublicKey]


class Jwk(ResponseModel):
    """An Ed25519 public key as a JWK (RFC 8037)."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str
    kid: str
    alg: Literal["EdDSA"]
    use: Literal["sig"]


class JwksView(ResponseModel):
    """The JSON Web Key Set that verifies reward tokens (current key first)."""

    keys: list[Jwk]


# --- wallets ------------------------------------------------------------------------------------

class WalletQuery(QueryModel):
    """Which wallet: the activity (required), the child (default: open, else latest started), the asset."""

    activity_id: Ident
    sub_activity_id: Ident | None = None
    asset: Asset = "CNY"


class FlowQuery(WalletQuery, Cursor):
    """A wallet and a page of its flow."""


class WalletView(ResponseModel):
    """Balance, pending (granted, not yet credited) and totals."""

    balance: int
    pending: int
    total_income: int
    total_withdrawn: int
    total_refunded: int
    currency: str


class FlowItem(ResponseModel):
    """A credit, withdrawal, refund or pending reward."""

    type: Literal["credit", "withdrawal", "refund", "pending"]
    amount: int
    at_ms: int
    bill_text: str
    order_id: str | None = None
    request_id: str | None = None
    posted_at_ms: int | None = None


class FlowPage(ResponseModel):
    """One page of a wallet's flow, newest first."""

    items: list[FlowItem]
    next_cursor: str | None


class WithdrawalBody(RequestModel):
    """A cash withdrawal; `tokens` are reward tokens whose orders are credited first."""

    activity_id: Ident
    sub_activity_id: Ident | None = None
    request_id: Ident = Field(description="idempotency key: a repeat answers the first outcome")
    amount: Amount
    tokens: Annotated[list[Token], Field(max_length=100, default_factory=list)]


class WithdrawalView(ResponseModel):
    """Where a withdrawal stands."""

    request_id: str
    amount: int
    status: Literal["PAID", "PAYOUT_PENDING", "REFUNDED"]
    balance: int | None = None
    failure: str | None = None


class WithdrawalQuery(QueryModel):
    """Which wallet the withdrawal was made from."""

    activity_id: Ident
    sub_activity_id: Ident | None = None


class WithdrawalRecord(ResponseModel):
    """A withdrawal as stored."""

    request_id: str
    sub_activity_id: str
    amount: int
    status: Literal["PAID", "PAYOUT_PENDING", "REFUNDED"]
    payout_ref: str | None
    created_at_ms: int
    resolved_at_ms: int | None
