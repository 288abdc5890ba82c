"""Tables of reward issuing and crediting.

Names follow the ledger: a wallet is debited/credited by ledger entries; amounts are integers in the
asset's minor unit (fen for cash, pieces for coupons). Every effect is guarded by a conditional write
on a durable key; the invariant each item carries is written next to it.
"""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, NumberAttribute, TTLAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection, LocalSecondaryIndex
from pynamodb.models import Model

from chalicelib.dynamo import meta, table

# Order status codes (ARCHITECTURE.md: ACCEPTED(1) -> CREDITING(2) -> CREDITED(8)). An order is stored as
# its wallet's credit entry in the ledger table (`LedgerEntry`).
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
    - a stock shard may carry `lease_{rid}` = {a: units, x: expires_at_ms}: units a grant batch reserved
      (already counted in `consumed`) and not yet settled; `resv#{rid}` / `journal` lists the orders
      they may be used for (`chalicelib.rewards.reservations`).
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
    first_at_ms = NumberAttribute(null=True)  # a stock shard's first consumption (kept, never moved)
    completed_by = UnicodeAttribute(null=True)
    journal = UnicodeAttribute(null=True)
    updated_at_ms = NumberAttribute(null=True)
    expires_at = TTLAttribute(null=True)


@table
class WalletItem(Model):
    """A user's holding of one asset in one child activity, keyed `{sub}#{act_id}#{asset}`.

    Invariants (enforced by the transactions that also post its ledger entries): `balance >= 0`;
    `balance = total_income - total_withdrawn + total_refunded` = the signed sum of its posted entries;
    `entry_count` = the number of its posted entries (`by_time`), so a reader can tell a consistent snapshot.
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
    """Sparse: a wallet's *posted* entries in flow order (`{at_ms:013d}#{entry_key}`), strongly consistent.

    Only posted entries carry `time_key`: a credit gets it when it is credited (at its order's creation
    time, where it showed as pending), a withdrawal or refund when written. So the wallet's `entry_count`
    is the number of its entries here and its balance their signed sum.
    """

    class Meta:
        index_name = "by_time"
        projection = AllProjection()

    wallet_id = UnicodeAttribute(hash_key=True)
    time_key = UnicodeAttribute(range_key=True)


class LedgerByHour(GlobalSecondaryIndex["LedgerEntry"]):
    """Entries by hour bucket (`{hour}#{bucket}`, the bucket chosen by the wallet): orders, pending and
    credited, withdrawals and refunds. Reconciliation reads one partition per bucket step."""

    class Meta:
        index_name = "by_hour"
        projection = AllProjection()

    hour_bucket = UnicodeAttribute(hash_key=True)
    entry_key = UnicodeAttribute(range_key=True)


class UnsentOrders(GlobalSecondaryIndex["LedgerEntry"]):
    """Sparse: an order carries `unsent_bucket` only while its credit message failed to send."""

    class Meta:
        index_name = "unsent"
        projection = KeysOnlyProjection()

    unsent_bucket = UnicodeAttribute(hash_key=True)
    created_at_ms = NumberAttribute(range_key=True)


CREDIT = "credit"
WITHDRAWAL = "withdrawal"
REFUND = "refund"


@table
class LedgerEntry(Model):
    """A wallet's entries, in the wallet's partition: `credit#{order_id}`, `withdrawal#{req}`, `refund#{req}`.

    A reward order *is* its wallet's credit entry `credit#{order_id}`: written once by its grant
    (put-if-absent, ACCEPTED, *pending*: no `posted_at_ms`/`time_key`), it becomes *posted* when it is
    credited (ACCEPTED/CREDITING -> CREDITED in the same transaction as the wallet ADD). So an order has
    exactly one credit, of its own amount, in its own wallet, by construction. Withdrawals and refunds
    are posted when written (put-if-absent in the transaction that moves the wallet).
    Invariants: `amount` (positive; `kind` says the direction), `wallet_id` and `shard` never change; the
    wallet's `entry_count` = its posted entries (`by_time`), its balance their signed sum.
    The order id is the entry key's tail; the order's facts are the attributes after `hour_bucket`.
    """

    Meta = meta("ledger")

    wallet_id = UnicodeAttribute(hash_key=True)
    entry_key = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute()
    amount = NumberAttribute()
    sub_activity_id = UnicodeAttribute()
    scene_id = UnicodeAttribute(null=True)
    request_id = UnicodeAttribute(null=True)
    bill_text = UnicodeAttribute(null=True)
    posted_at_ms = NumberAttribute(null=True)  # absent while an order is pending
    time_key = UnicodeAttribute(null=True)  # absent while an order is pending (sparse `by_time`)
    hour = UnicodeAttribute()
    hour_bucket = UnicodeAttribute()
    # --- an order's facts (credit entries only) ---
    activity_id = UnicodeAttribute(null=True)
    act_id = UnicodeAttribute(null=True)
    rain_id = UnicodeAttribute(null=True)
    award_type = UnicodeAttribute(null=True)
    stage = UnicodeAttribute(null=True)
    asset = UnicodeAttribute(null=True)
    order_cap = NumberAttribute(null=True)
    shard = NumberAttribute(null=True)
    status = NumberAttribute(null=True)
    created_at_ms = NumberAttribute(null=True)
    open_time_ms = NumberAttribute(null=True)  # when the reward was won (chose the child)
    unsent_bucket = UnicodeAttribute(null=True)
    credited_at_ms = NumberAttribute(null=True)
    credited_by = UnicodeAttribute(null=True)
    redriven = UnicodeAttribute(null=True)
    reservation = UnicodeAttribute(null=True)  # the block reservation its units came from (batch grants)
    reconcile = BooleanAttribute(null=True)  # its scene's `reconcile` when placed (pinned; absent: reconciled)

    by_time = LedgerByTime()
    by_hour = LedgerByHour()
    unsent = UnsentOrders()

    @property
    def order_id(self) -> str | None:
        """The order a credit entry is (derived from the key, not stored); None for other entries."""
        return self.entry_key.split("#", 1)[1] if self.kind == CREDIT else None

    @property
    def order_key(self) -> str | None:
        """The order's logical name `{ns}#{order_id}` (the wallet id starts with the namespace)."""
        order_id = self.order_id
        return None if order_id is None else f"{self.wallet_id.split('#', 1)[0]}#{order_id}"


class UnresolvedWithdrawals(GlobalSecondaryIndex["WithdrawalItem"]):
    """Sparse: withdrawals whose payout outcome is not yet known, by their next check time; the payout
    sweeper reads the due ones of each bucket. Each check moves one back (backoff), so stuck payouts never
    hold the head of a bucket. (It replaced `unresolved`, ordered by debit time, where 100 stuck payouts
    starved every newer one.)"""

    class Meta:
        index_name = "payout_due"
        projection = KeysOnlyProjection()

    unresolved_bucket = UnicodeAttribute(hash_key=True)
    next_check_at_ms = NumberAttribute(range_key=True)


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
    so one request debits once; moves PAYOUT_PENDING -> PAID, or PAYOUT_PENDING -> REFUNDED (only on the
    provider's definite failure) together with the compensating refund entry. `payout_id` (globally unique,
    what the provider is called with) and `recipient` (the user) are written before the provider is called
    and never change.
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
    # While unresolved: when the sweeper asks the provider next, how many answers decided nothing so far,
    # and the last of them (PROCESSING, TIMEOUT, ...). See `chalicelib.rewards.payout_states`.
    next_check_at_ms = NumberAttribute(null=True)
    payout_checks = NumberAttribute(null=True)
    payout_answer = UnicodeAttribute(null=True)
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
