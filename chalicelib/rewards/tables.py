"""Tables of reward issuing and crediting.

Names follow the ledger: a wallet is debited/credited by ledger entries; amounts are integers in the
asset's minor unit (fen for cash, pieces for coupons). Every effect is guarded by a conditional write
on a durable key; the invariant each item carries is written next to it.
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.indexes import (
    AllProjection,
    GlobalSecondaryIndex,
    KeysOnlyProjection,
    LocalSecondaryIndex,
)
from pynamodb.models import Model

from chalicelib.dynamo import meta, table

# Order status codes (ARCHITECTURE.md: ACCEPTED(1) -> CREDITING(2) -> CREDITED(8)).
ACCEPTED = 1
CREDITING = 2
CREDITED = 8
STATUS_NAMES = {ACCEPTED: "ACCEPTED", CREDITING: "CREDITING", CREDITED: "CREDITED"}


@table
class ConfigItem(Model):
    """Admin configuration: an activity (`activity#{id}`/`meta`), its scenes (`scene#{id}`), switches.

    `body` is the JSON document validated by `chalicelib.rewards.config`; `version` makes concurrent
    admin edits fail instead of overwriting each other.
    """

    Meta = meta("config")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    body = UnicodeAttribute()
    updated_at_ms = NumberAttribute()
    version = VersionAttribute()


class OrdersByHour(GlobalSecondaryIndex["OrderItem"]):
    """The orders of one hour, spread over `RG_HOUR_BUCKETS` partitions (`{hour}#{bucket}`)."""

    class Meta:
        index_name = "by_hour"
        projection = AllProjection()

    hour_bucket = UnicodeAttribute(hash_key=True)
    order_key = UnicodeAttribute(range_key=True)


class PendingOrdersByWallet(GlobalSecondaryIndex["OrderItem"]):
    """Sparse: an order carries `pending_wallet` only until it is credited."""

    class Meta:
        index_name = "pending_by_wallet"
        projection = KeysOnlyProjection()

    pending_wallet = UnicodeAttribute(hash_key=True)
    created_at_ms = NumberAttribute(range_key=True)


class UnsentOrders(GlobalSecondaryIndex["OrderItem"]):
    """Sparse: an order carries `unsent_bucket` only while its credit message failed to send."""

    class Meta:
        index_name = "unsent"
        projection = KeysOnlyProjection()

    unsent_bucket = UnicodeAttribute(hash_key=True)
    created_at_ms = NumberAttribute(range_key=True)


@table
class OrderItem(Model):
    """One reward order, keyed `{sub_activity_id}#{order_id}`.

    Invariants: created at most once (put-if-absent in the grant transaction, together with the
    counter shard it consumed); status only moves ACCEPTED -> CREDITED, in the same transaction as the
    wallet credit and the ledger entry; `amount`, `wallet_id` and `shard` never change.
    """

    Meta = meta("orders")

    order_key = UnicodeAttribute(hash_key=True)
    order_id = UnicodeAttribute()
    activity_id = UnicodeAttribute()
    sub_activity_id = UnicodeAttribute()
    scene_id = UnicodeAttribute()
    act_id = UnicodeAttribute()
    rain_id = UnicodeAttribute()
    award_type = UnicodeAttribute()
    stage = UnicodeAttribute()
    amount = NumberAttribute()
    asset = UnicodeAttribute()
    wallet_id = UnicodeAttribute()
    order_cap = NumberAttribute()
    shard = NumberAttribute(null=True)
    status = NumberAttribute()
    created_at_ms = NumberAttribute()
    open_time_ms = NumberAttribute(null=True)  # when the reward was won (chose the child); absent on older orders
    hour = UnicodeAttribute()
    hour_bucket = UnicodeAttribute()
    pending_wallet = UnicodeAttribute(null=True)
    unsent_bucket = UnicodeAttribute(null=True)
    bill_text = UnicodeAttribute(null=True)
    credited_at_ms = NumberAttribute(null=True)
    credited_by = UnicodeAttribute(null=True)
    redriven = UnicodeAttribute(null=True)

    by_hour = OrdersByHour()
    pending_by_wallet = PendingOrdersByWallet()
    unsent = UnsentOrders()


@table
class CounterItem(Model):
    """Sharded counters and their journals, all small items under one table.

    Keys use the child namespace `ns` = `{activity_id}/{sub_activity_id}`.
    - `stock#{ns}#{scene}` / shard `0000`..: a stock or budget shard. Invariant (grant transaction
      condition `remaining >= amount`, re-spread conditions `remaining >= -delta`):
      `consumed + remaining = cap`, `remaining >= 0`, and the caps of a counter sum to at most the
      scene total, so the sum of `consumed` never exceeds the total.
    - `dist#{ns}#{asset}` / shard: the "total distributed" figure, one ADD per crediting batch;
      `dist#{ns}#{asset}#{hour}` / shard: the same for orders of one hour, which reconciliation checks.
    - `tally#{ns}#{hour}#{n}` / `{batch_id}#{asset}`: the marker written in the same transaction as
      those ADDs, so a batch is added exactly once and reconciliation can finish a crashed batch.
    """

    Meta = meta("counters", ttl_attribute="expires_at")

    counter_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    cap = NumberAttribute(null=True)
    consumed = NumberAttribute(null=True)
    remaining = NumberAttribute(null=True)
    amount = NumberAttribute(null=True)
    count = NumberAttribute(null=True)
    spread_version = NumberAttribute(null=True)
    completed_by = UnicodeAttribute(null=True)
    updated_at_ms = NumberAttribute(null=True)
    expires_at = TTLAttribute(null=True)


@table
class WalletItem(Model):
    """A user's holding of one asset in one child activity, keyed `{sub}#{act_id}#{asset}`.

    Invariants (enforced by the transactions that also write the ledger): `balance >= 0`;
    `balance = total_income - total_withdrawn + total_refunded` = the sum over its ledger;
    `entry_count` = the number of its ledger entries, so a reader can tell a consistent snapshot.
    """

    Meta = meta("wallets")

    wallet_id = UnicodeAttribute(hash_key=True)
    sub_activity_id = UnicodeAttribute()
    act_id = UnicodeAttribute()
    asset = UnicodeAttribute()
    balance = NumberAttribute()
    total_income = NumberAttribute()
    total_withdrawn = NumberAttribute()
    total_refunded = NumberAttribute()
    entry_count = NumberAttribute()
    updated_at_ms = NumberAttribute()


class LedgerByTime(LocalSecondaryIndex["LedgerEntry"]):
    """A wallet's entries in posting order (`{posted_at_ms:013d}#{entry_key}`), strongly consistent."""

    class Meta:
        index_name = "by_time"
        projection = AllProjection()

    wallet_id = UnicodeAttribute(hash_key=True)
    time_key = UnicodeAttribute(range_key=True)


class LedgerByHour(GlobalSecondaryIndex["LedgerEntry"]):
    """Entries by hour bucket; a credit uses its order's hour and bucket so the two join per bucket."""

    class Meta:
        index_name = "by_hour"
        projection = AllProjection()

    hour_bucket = UnicodeAttribute(hash_key=True)
    entry_key = UnicodeAttribute(range_key=True)


CREDIT = "credit"
WITHDRAWAL = "withdrawal"
REFUND = "refund"


@table
class LedgerEntry(Model):
    """One immutable movement of a wallet: `credit#{order_id}`, `withdrawal#{req}` or `refund#{req}`.

    Invariant (put-if-absent in the same transaction as the wallet update): one entry per key, so an
    order is credited once and a withdrawal request debits once. `amount` is positive; `kind` says
    the direction.
    """

    Meta = meta("ledger")

    wallet_id = UnicodeAttribute(hash_key=True)
    entry_key = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute()
    amount = NumberAttribute()
    sub_activity_id = UnicodeAttribute()
    order_key = UnicodeAttribute(null=True)
    scene_id = UnicodeAttribute(null=True)
    request_id = UnicodeAttribute(null=True)
    bill_text = UnicodeAttribute(null=True)
    posted_at_ms = NumberAttribute()
    time_key = UnicodeAttribute()
    hour = UnicodeAttribute()
    hour_bucket = UnicodeAttribute()

    by_time = LedgerByTime()
    by_hour = LedgerByHour()


class UnresolvedWithdrawals(GlobalSecondaryIndex["WithdrawalItem"]):
    """Sparse: withdrawals whose payout outcome is not yet known; the payout sweeper reads this."""

    class Meta:
        index_name = "unresolved"
        projection = KeysOnlyProjection()

    unresolved_bucket = UnicodeAttribute(hash_key=True)
    created_at_ms = NumberAttribute(range_key=True)


class WithdrawalsByPayoutHour(GlobalSecondaryIndex["WithdrawalItem"]):
    """The withdrawals whose payout was issued in one hour (`{hour}#{bucket}`), for payout reconciliation."""

    class Meta:
        index_name = "by_payout_hour"
        projection = AllProjection()

    payout_hour_bucket = UnicodeAttribute(hash_key=True)
    payout_id = UnicodeAttribute(range_key=True)


PAYOUT_PENDING = "PAYOUT_PENDING"
PAID = "PAID"
REFUNDED = "REFUNDED"


@table
class WithdrawalItem(Model):
    """A withdrawal request and its payout outcome, keyed by wallet and the caller's `request_id`.

    Invariant: written in the debit transaction (put-if-absent, together with its `WithdrawalRequestItem`),
    so one request debits once; moves PAYOUT_PENDING -> PAID, or PAYOUT_PENDING -> REFUNDED together with the
    compensating refund entry. `payout_id` (globally unique, what the provider is called with) and
    `recipient` (the user) are written before the provider is called and never change.
    """

    Meta = meta("withdrawals")

    wallet_id = UnicodeAttribute(hash_key=True)
    request_id = UnicodeAttribute(range_key=True)
    amount = NumberAttribute()
    status = UnicodeAttribute()
    created_at_ms = NumberAttribute()
    resolved_at_ms = NumberAttribute(null=True)
    payout_ref = UnicodeAttribute(null=True)
    failure = UnicodeAttribute(null=True)
    unresolved_bucket = UnicodeAttribute(null=True)
    # Null only on withdrawals written before payout ids existed (their provider id is the request id).
    payout_id = UnicodeAttribute(null=True)
    recipient = UnicodeAttribute(null=True)
    sub_activity_id = UnicodeAttribute(null=True)
    payout_hour_bucket = UnicodeAttribute(null=True)

    unresolved = UnresolvedWithdrawals()
    by_payout_hour = WithdrawalsByPayoutHour()


class RequestsByPayoutId(GlobalSecondaryIndex["WithdrawalRequestItem"]):
    """A withdrawal request by its payout id: reconciliation's way from a provider record to the withdrawal."""

    class Meta:
        index_name = "by_payout_id"
        projection = AllProjection()

    payout_id = UnicodeAttribute(hash_key=True)


@table
class WithdrawalRequestItem(Model):
    """A user's withdrawal request id in one parent activity: `{activity_id}#{act_id}` / `request_id`.

    Request ids are the caller's, unique per user and parent activity (not per child wallet). Invariant:
    put-if-absent in the debit transaction, so a request id debits one wallet once, whichever child is
    open when it is repeated; `wallet_id`, `amount` and `payout_id` never change.
    """

    Meta = meta("withdrawal-requests")

    user_key = UnicodeAttribute(hash_key=True)
    request_id = UnicodeAttribute(range_key=True)
    wallet_id = UnicodeAttribute()
    sub_activity_id = UnicodeAttribute()
    amount = NumberAttribute()
    payout_id = UnicodeAttribute()
    created_at_ms = NumberAttribute()

    by_payout_id = RequestsByPayoutId()
