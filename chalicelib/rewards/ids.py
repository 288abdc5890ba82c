"""Pure decisions about identity and placement: order ids, keys, shards, buckets, gray admission.

Nothing here does I/O. Separators (`_`, `#`, `/`) never occur inside an identifier (see
`chalicelib.validate.IDENT`), so every key below is unambiguous.
"""

from __future__ import annotations

import hashlib

CASH = "cash"
COUPON = "coupon"
AWARD_TYPES = (CASH, COUPON)
CASH_ASSET = "CNY"


def stable_hash(text: str) -> int:
    """A process-independent 64-bit hash (Python's `hash()` is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def order_id(act_id: str, scene_id: str, rain_id: str, award_type: str, stage: str) -> str:
    """`{act_id}_{scene_id}_{rain_id}_{award_type}_{stage}`: one reward per user per scene round."""
    return f"{act_id}_{scene_id}_{rain_id}_{award_type}_{stage}"


def child_ns(activity_id: str, sub_activity_id: str) -> str:
    """The namespace of one child activity; orders, wallets and counters of different children never mix."""
    return f"{activity_id}/{sub_activity_id}"


def order_key(ns: str, order_id_: str) -> str:
    """Primary key of an order within its child activity."""
    return f"{ns}#{order_id_}"


def asset_of(award_type: str, template_id: str | None) -> str:
    """What a wallet holds: `CNY` (fen) for cash, `coupon:{template_id}` (pieces) for coupons."""
    return CASH_ASSET if award_type == CASH else f"coupon:{template_id}"


def wallet_id(ns: str, act_id: str, asset: str) -> str:
    """Primary key of a user's wallet for one asset in one child activity."""
    return f"{ns}#{act_id}#{asset}"


def order_wallet_id(ns: str, order_id_: str, asset: str) -> str:
    """The wallet an order of `ns` pays into: its user is the order id's first part (`order_id`'s format)."""
    return wallet_id(ns, order_id_.split("_", 1)[0], asset)


def stock_counter_id(ns: str, scene_id: str) -> str:
    """Counter holding a scene's stock/budget shards in one child activity."""
    return f"stock#{ns}#{scene_id}"


def distributed_counter_id(ns: str, asset: str) -> str:
    """Counter holding the child activity's "total distributed" shards for one asset."""
    return f"dist#{ns}#{asset}"


def distributed_hour_counter_id(ns: str, asset: str, hour: str) -> str:
    """Counter holding what was credited for orders of one hour: what reconciliation compares, hour by hour."""
    return f"dist#{ns}#{asset}#{hour}"


def tally_counter_id(ns: str, hour: str, bucket: int) -> str:
    """Partition of the per-batch tally markers of one hour."""
    return f"tally#{ns}#{hour}#{bucket}"


SHARD_SK = "shard"
HEAD_SK = "head"


def shard_key(counter_id: str, index: int) -> tuple[str, str]:
    """(hash key, range key) of shard `index` of a counter.

    The shard number is part of the partition key, so every shard sits on its own partition and gets
    that partition's whole 1 000 write units/s from the first second. (Shards sharing one partition key
    would share one partition until DynamoDB split it, capping a scene near 500 grants/s.)
    """
    return f"{counter_id}#{index:04d}", SHARD_SK


def shard_index(shard_hash_key: str) -> int:
    """The shard number of a shard item, from its hash key (the inverse of `shard_key`)."""
    return int(shard_hash_key.rsplit("#", 1)[1])


def bucket_of(key: str, buckets: int) -> int:
    """Which of `buckets` partitions a key's hour-index entry goes to."""
    return stable_hash(key) % buckets


def hour_bucket(hour: str, bucket: int) -> str:
    """Hash key of the hour indexes: `{YYYYMMDDHH}#{bucket}`."""
    return f"{hour}#{bucket}"


def wallet_hour_bucket(hour: str, wallet_id: str, buckets: int) -> str:
    """Hour-index partition of an order or ledger entry: chosen by its wallet.

    Invariant: every order and ledger entry of one wallet in one hour shares one bucket, so the reconciler
    checks each wallet in exactly one bucket step, however often the pass is resumed. Writes still spread
    over all buckets (wallets are many; one user's rewards in an hour are few).
    """
    return hour_bucket(hour, bucket_of(wallet_id, buckets))


def shard_order(key: str, shard_count: int) -> list[int]:
    """The shards a grant tries, in order: a home shard chosen by the order key, then the others.

    Spreading home shards by key keeps each shard's write rate at 1/shard_count of the total; walking
    on from the home shard (rather than always from 0) keeps the fallback load spread too.
    """
    if shard_count <= 0:
        return []
    home = stable_hash(key) % shard_count
    return [(home + step) % shard_count for step in range(shard_count)]


def gray_admits(act_id: str, percent: int) -> bool:
    """Whether a user falls inside a gray rollout of `percent` % (stable per user)."""
    return stable_hash(f"gray:{act_id}") % 100 < percent
