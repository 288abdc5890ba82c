"""The connection registry: which WebSocket connections follow which game, and how far each has been sent.

API Gateway holds every connection and any function may post to any of them (`@connections`), so routing
is a table, not an instance map. Two items per connection, put and deleted together:

- `c#{connection_id}` / `c` (the connection): `game_id`, `app_id`, `connected_at_ms`, and its cursor:
  `sent_seq` (every seq up to it has been posted to this connection), `gen` (moved by each `resume`; a
  push made under an older gen cannot move the cursor) and `acked_seq` (what the client acknowledged).
  Invariant (conditional update `gen = :gen AND sent_seq < :new`): `sent_seq` only moves forward within a
  gen, and only after everything up to it was posted under that gen.
- `g#{game_id}` / `{connection_id}` (the game's member list): what a fan-out queries, strongly consistent.
- `s#{game_id}` / `{slot:04d}` (the game's connection slots, `RG_LIVE_MAX_CONNECTIONS_PER_GAME` of them):
  `holder` is the connection that took it. A connection is registered only in the transaction that takes a
  free slot (absent, or past its `expires_at`), so a game never holds more connections than slots, however
  many `$connect`s race; the connection item records its `slot`, and removing the connection frees it.
- On the connection item, `win` / `win_n`: the minute and how many `resume`/`ping` frames it sent in it.

Both expire (DynamoDB TTL) after API Gateway's 2-hour connection limit, should `$disconnect` never come.
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.models import Model

from chalicelib.dynamo import meta, table

CONNECTION_SK = "c"


def connection_pk(connection_id: str) -> str:
    """Hash key of a connection's item."""
    return f"c#{connection_id}"


def members_pk(game_id: str) -> str:
    """Hash key of a game's member list."""
    return f"g#{game_id}"


def slots_pk(game_id: str) -> str:
    """Hash key of a game's connection slots."""
    return f"s#{game_id}"


def slot_sk(slot: int) -> str:
    """Range key of one slot."""
    return f"{slot:04d}"


@table
class LiveConnectionItem(Model):
    """A connection (`c#...` / `c`) or a game's member entry (`g#...` / connection id); see the module doc."""

    Meta = meta("live-connections", ttl_attribute="expires_at")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    game_id = UnicodeAttribute(null=True)
    app_id = NumberAttribute(null=True)
    connected_at_ms = NumberAttribute(null=True)
    sent_seq = NumberAttribute(null=True)
    acked_seq = NumberAttribute(null=True)
    gen = NumberAttribute(null=True)
    slot = NumberAttribute(null=True)
    holder = UnicodeAttribute(null=True)
    win = NumberAttribute(null=True)
    win_n = NumberAttribute(null=True)
    expires_at = TTLAttribute(null=True)
