"""Tables of interactive play. Each item kind, its key and the invariant it carries are listed here.

Amounts are integers in the platform's unit (1 000 = ¥1, like Bilibili's `price`); the bill converts
to fen only when it credits a wallet.
"""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    MapAttribute,
    NumberAttribute,
    NumberSetAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.dynamo import meta, table


@table
class PlayConfigItem(Model):
    """Play apps, identity codes and anchors.

    - `apps` / `app#{app_id}`: a play app; `body` is its JSON document (name, share ratio history,
      interactive gift ids, sandbox, limits, access key id). `rev` guards concurrent edits.
    - `anchor#{anchor_id}` / `code`: the anchor's room and the `generation` of its current code.
    - `code#{hmac(code)}` / `code`: what a code resolves to, with its `generation`. Invariant (put in one
      transaction with the anchor's generation): a code resolves only while its generation is the
      anchor's current one; the code itself is never stored, only its HMAC.
    """

    Meta = meta("play-config")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    body = UnicodeAttribute(null=True)
    rev = NumberAttribute(null=True)
    anchor_id = NumberAttribute(null=True)
    room_id = NumberAttribute(null=True)
    generation = NumberAttribute(null=True)
    uname = UnicodeAttribute(null=True)
    updated_at_ms = NumberAttribute(null=True)


class RunningGames(GlobalSecondaryIndex["PlayGameItem"]):
    """Sparse: a game carries `running_bucket` only while it runs; the sweeper reads this index."""

    class Meta:
        index_name = "running"
        projection = KeysOnlyProjection()

    running_bucket = UnicodeAttribute(hash_key=True)
    started_at_ms = NumberAttribute(range_key=True)


class GamesByApp(GlobalSecondaryIndex["PlayGameItem"]):
    """An app's games by start time (hourly reconciliation finds the games that ran in an hour)."""

    class Meta:
        index_name = "by_app"
        projection = IncludeProjection(["status", "ended_at_ms"])

    app_id = NumberAttribute(hash_key=True)
    started_at_ms = NumberAttribute(range_key=True)


@table
class PlayGameItem(Model):
    """Rooms and games.

    - `room#{room_id}` / `room`: which game runs in the room (`game_id`, `app_id`, `status`), and after
      an end, `cooldown_until_ms`. Invariant (conditional start transaction): at most one RUNNING game
      per room.
    - `game#{game_id}` / `game`: one game. `status` moves RUNNING -> ENDING -> ENDED once; ENDED is set in
      the transaction that frees its room; `next_seq` is the last sequence number allocated in its event
      stream (ADDed to only while RUNNING, then set once for the end event).
    """

    Meta = meta("play-games")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    game_id = UnicodeAttribute(null=True)
    app_id = NumberAttribute(null=True)
    room_id = NumberAttribute(null=True)
    anchor_id = NumberAttribute(null=True)
    open_id = UnicodeAttribute(null=True)
    uname = UnicodeAttribute(null=True)
    uface = UnicodeAttribute(null=True)
    sandbox = BooleanAttribute(null=True)
    status = UnicodeAttribute(null=True)
    started_at_ms = NumberAttribute(null=True)
    hb_deadline_ms = NumberAttribute(null=True)
    ended_at_ms = NumberAttribute(null=True)
    end_reason = UnicodeAttribute(null=True)
    end_seq = NumberAttribute(null=True)
    next_seq = NumberAttribute(null=True)
    last_alloc_ms = NumberAttribute(null=True)
    first_seq_by_hour = MapAttribute(null=True)  # {YYYYMMDDHH: first seq allocated in that hour}
    cooldown_until_ms = NumberAttribute(null=True)
    running_bucket = UnicodeAttribute(null=True)
    rev = NumberAttribute(null=True)  # a room's revision: a start is conditioned on the one it read
    updated_at_ms = NumberAttribute(null=True)

    running = RunningGames()
    by_app = GamesByApp()


@table
class PlayStreamItem(Model):
    """One entry of a game's event stream, keyed (`game_id`, `seq`).

    Invariant (every write is put-if-absent on an allocated seq): one item per seq, never rewritten;
    `kind` is `event`, `end` (LIVE_OPEN_PLATFORM_INTERACTION_END, the last seq) or `skip` (a seq whose
    writer died, filled so that readers can go on: delivered as `RG_SEQ_SKIPPED`).
    """

    Meta = meta("play-streams", ttl_attribute="expires_at")

    game_id = UnicodeAttribute(hash_key=True)
    seq = NumberAttribute(range_key=True)
    kind = UnicodeAttribute()
    cmd = UnicodeAttribute()
    data = UnicodeAttribute()
    msg_id = UnicodeAttribute(null=True)
    at_ms = NumberAttribute()
    test = BooleanAttribute(null=True)
    settled = UnicodeAttribute(null=True)  # the settlement entry's partition, for a settled gift
    expires_at = TTLAttribute(null=True)


@table
class PlayGuardItem(Model):
    """Short-lived guards, each with a TTL.

    - `nonce#{app_id}#{nonce}` / `n`: a signature nonce seen (put-if-absent: a replay is refused).
    - `rate#{app_id}#{api}#{epoch_s}` / `r`: calls of one API in one second (`count`, ADDed).
    - `ban#{app_id}` / `b`: the app's offences and ban (`offences`, `banned_until_ms`, `last_offence_ms`).
    - `msg#{room_id}#{msg_id}` / `m`: a live event received (`game_id`, `seq`, `content_hash`);
      written in the transaction that appends it, so a msg_id is appended at most once.
    """

    Meta = meta("play-guard", ttl_attribute="expires_at")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    count = NumberAttribute(null=True)
    offences = NumberAttribute(null=True)
    banned_until_ms = NumberAttribute(null=True)
    last_offence_ms = NumberAttribute(null=True)
    app_id = NumberAttribute(null=True)
    game_id = UnicodeAttribute(null=True)
    seq = NumberAttribute(null=True)
    content_hash = UnicodeAttribute(null=True)
    at_ms = NumberAttribute(null=True)
    expires_at = TTLAttribute(null=True)


@table
class PlaySettlementItem(Model):
    """Settlement of interactive gifts: entries, hour counters, daily bills.

    - `{app_id}#{hour}#{bucket}` / `e#{msg_id}`: one settled gift (revenue, developer share, the ratio
      version used). Invariant (put-if-absent in the append transaction): one entry per gift.
    - `{app_id}#{hour}#{bucket}` / `sum`: ADDed in that same transaction, so it always equals the sum of
      the entries beside it (`gifts`, `revenue`, `developer_share`, `ratio_versions`).
    - `bill#{app_id}` / `{YYYYMMDD}`: a closed day (UTC+8). Invariant: put once (immutable); only its
      credit fields move PENDING -> PLACED. `bill#{app_id}` / `cursor`: the last closed day and the
      cumulative developer share through it, moved in the same transaction as the bill is put.
    """

    Meta = meta("play-settlement")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    app_id = NumberAttribute(null=True)
    msg_id = UnicodeAttribute(null=True)
    day = UnicodeAttribute(null=True)
    hour = UnicodeAttribute(null=True)
    gift_id = NumberAttribute(null=True)
    gift_num = NumberAttribute(null=True)
    price = NumberAttribute(null=True)
    gifts = NumberAttribute(null=True)
    revenue = NumberAttribute(null=True)
    developer_share = NumberAttribute(null=True)
    share_bp = NumberAttribute(null=True)
    ratio_version = NumberAttribute(null=True)
    ratio_versions = NumberSetAttribute(null=True)
    game_id = UnicodeAttribute(null=True)
    seq = NumberAttribute(null=True)
    room_id = NumberAttribute(null=True)
    at_ms = NumberAttribute(null=True)
    test = BooleanAttribute(null=True)
    cumulative_share = NumberAttribute(null=True)
    through_day = UnicodeAttribute(null=True)
    credit_fen = NumberAttribute(null=True)
    credit_status = UnicodeAttribute(null=True)
    credit_order_id = UnicodeAttribute(null=True)
    closed_at_ms = NumberAttribute(null=True)
