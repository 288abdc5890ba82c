"""What each Lambda function may touch: the one declaration the IAM policies are generated from.

Chalice deploys every route as one function (`api_handler`) and each `@on_sqs_message` / `@schedule`
handler as its own function named after the handler. Each gets its own role whose policy
(`infra.iam`) grants exactly the actions listed here, on the named tables, indexes, queues and
secrets of its stage, and nothing else.

Adding a function: add its entry to `ACCESS` (packaging fails for a function without one). Adding
a table or queue: the model / `QueueSpec` is the definition; grant it here to the functions that use
it. The queue a function is triggered by needs no entry: its consume permissions come from the
event source. The entries were derived by reading the code paths of each handler; the functional test
`tests/functional/test_deploy_iam_coverage.py` records every AWS call the handlers make while
exercising them and checks each one against the generated policy.

Lambda settings (memory, timeout, reserved concurrency, architecture, log retention) are Chalice's and
live in `.chalice/config.json`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# DynamoDB actions, as IAM names them. A TransactWriteItems needs the per-item action (PutItem,
# UpdateItem, ...) on each table it writes; TransactWriteItems itself is not an IAM action.
GET = ("GetItem",)
BATCH_GET = ("BatchGetItem",)
QUERY = ("Query",)
PUT = ("PutItem",)
UPDATE = ("UpdateItem",)
DELETE = ("DeleteItem",)


@dataclass(frozen=True)
class TableAccess:
    """Actions on one table (by its logical name) and the indexes the function queries."""

    actions: tuple[str, ...]
    indexes: tuple[str, ...] = ()


def table(*actions: tuple[str, ...], indexes: tuple[str, ...] = ()) -> TableAccess:
    """`table(GET, PUT, indexes=("by_hour",))`: a sorted, duplicate-free TableAccess."""
    return TableAccess(tuple(sorted({a for group in actions for a in group})), tuple(sorted(indexes)))


@dataclass(frozen=True)
class Access:
    """Everything one function reaches besides its own log group and its triggering queue."""

    tables: Mapping[str, TableAccess] = field(default_factory=dict)
    send_to: tuple[str, ...] = ()  # queues (logical names) it sends messages to
    dlq_depth_of: tuple[str, ...] = ()  # queues (logical names) whose DLQ depth it reads
    secrets: tuple[str, ...] = ()  # names under `rewardgate/{stage}/`; a trailing `/*` for a family
    manage_connections: bool = False  # post to / close the WebSocket API's connections (@connections)


REWARD_TOKEN_KEY = "reward-token-key"  # noqa: S105 - a secret name, not a value
TP_APPS = "tp-apps/*"
PLAY_KEY = "play-key"
PLAY_APPS = "play-apps/*"

# Interactive play (chalicelib/play): what its hourly reconciliation reads, and what the API does.
_PLAY_RECONCILE_TABLES = {
    "play-config": table(QUERY),
    "play-settlement": table(QUERY),
    "play-games": table(BATCH_GET, indexes=("by_app",)),
    "play-streams": table(QUERY, BATCH_GET),
}
_PLAY_API_TABLES = {
    "play-config": table(GET, QUERY, PUT, UPDATE),
    "play-games": table(GET, BATCH_GET, PUT, UPDATE, indexes=("by_app",)),
    "play-streams": table(QUERY, BATCH_GET, PUT),
    "play-guard": table(GET, BATCH_GET, PUT, UPDATE),
    "play-settlement": table(GET, QUERY, BATCH_GET, PUT, UPDATE),
}
# Closing a bill places its credit through the rewards grant path (chalicelib.rewards.grants.place/enqueue).
_GRANT_PATH = {
    "config": table(GET, QUERY, PUT),
    "ledger": table(GET, PUT, UPDATE),  # an order is its wallet's ledger credit
}

# What the reconciler reads and repairs; the POST /v1/admin/reconciliations route runs the same
# passes inside the API function, so the API handler holds the same grants.
_RECONCILE_TABLES = {
    "reconciliation": table(GET, PUT, QUERY, UPDATE),
    # orders (credit entries) and withdrawals/refunds by hour; re-drive marks; dead reservations' orders
    "ledger": table(GET, BATCH_GET, QUERY, UPDATE, indexes=("by_hour",)),
    "wallets": table(GET),
    # stock shards read together (a counter's first consumption, its consumed units), late-hour marks, the watermark
    "counters": table(GET, BATCH_GET, QUERY, PUT, UPDATE),
    "config": table(GET, QUERY),
    "events": table(GET, BATCH_GET, UPDATE, indexes=("unapplied",)),
    # payouts: the hour's withdrawals by payout hour, a provider record's withdrawal by payout id (the fake
    # provider's ledger is in the config table)
    "withdrawals": table(GET, indexes=("by_payout_hour",)),
    "withdrawal-requests": table(GET, indexes=("by_payout_id",)),
}


def _merge(*maps: Mapping[str, TableAccess]) -> dict[str, TableAccess]:
    out: dict[str, TableAccess] = {}
    for mapping in maps:
        for name, access in mapping.items():
            if name in out:
                access = TableAccess(tuple(sorted({*out[name].actions, *access.actions})),
                                     tuple(sorted({*out[name].indexes, *access.indexes})))
            out[name] = access
    return out


ACCESS: dict[str, Access] = {
    # Every route but the callbacks: admin config, grants, wallets and withdrawals, the tp apps' reads,
    # the public keys, on-demand reconciliation, the audit log.
    "api_handler": Access(
        tables=_merge(_RECONCILE_TABLES, {
            "config": table(GET, QUERY, PUT),
            "counters": table(GET, BATCH_GET, QUERY, PUT, UPDATE),
            "wallets": table(GET, UPDATE),
            # orders are the wallets' credit entries: granted (PUT), pending (QUERY of the partition), credited
            "ledger": table(GET, BATCH_GET, PUT, QUERY, UPDATE, indexes=("by_time",)),
            "withdrawals": table(GET, PUT, UPDATE),
            # a user's request ids across child activities, claimed in the debit transaction
            "withdrawal-requests": table(GET, PUT),
            "events": table(GET, indexes=("by_tp_app", "by_tp_app_type")),
            "app-state": table(GET, QUERY),
            # the audit record of every admin change and withdrawal, and its answered status
            "audit": table(PUT, UPDATE),
        }, _PLAY_RECONCILE_TABLES, _PLAY_API_TABLES),
        # live: a push message once live events or a game's end are stored (chalicelib/live/notify.py)
        send_to=("credits", "events", "live"),
        dlq_depth_of=("credits", "events", "live"),
        secrets=(REWARD_TOKEN_KEY, TP_APPS, PLAY_KEY, PLAY_APPS),
    ),
    # The platform's callbacks: store each event once (put-if-absent), enqueue it, read the tp app's
    # credentials. Nothing of the rewards: a bug here cannot touch money.
    "callback_handler": Access(
        tables={"events": table(PUT)},
        send_to=("events",),
        secrets=(TP_APPS,),
    ),
    # Applies one stored callback event to the app's state.
    "apply_callback_events": Access(
        tables={"events": table(GET, UPDATE), "app-state": table(PUT)},
    ),
    # Re-enqueues callback events left RECEIVED.
    "sweep_received_events": Access(
        tables={"events": table(UPDATE, indexes=("unapplied",))},
        send_to=("events",),
    ),
    # Credits orders: the order (its wallet's ledger credit) posted, the wallet, the batch tally on the counters.
    "credit_worker": Access(
        tables={
            "ledger": table(GET, UPDATE),
            "wallets": table(UPDATE),
            "counters": table(PUT, UPDATE),
        },
    ),
    # Re-sends unsent credit messages; settles withdrawals whose payout outcome is unknown (the fake
    # payout provider keeps its state in the config table).
    "rewards_sweeper": Access(
        tables={
            "withdrawals": table(GET, UPDATE, indexes=("payout_due",)),
            "ledger": table(BATCH_GET, PUT, UPDATE, indexes=("unsent",)),
            "wallets": table(UPDATE),
            "config": table(GET, PUT),
        },
        send_to=("credits",),
    ),
    # The hourly passes: joins orders, ledger, wallets and counters, completes tallies, re-drives
    # stuck credits and callback events, reads DLQ depth.
    "reconciler": Access(
        tables=_merge(_RECONCILE_TABLES, _PLAY_RECONCILE_TABLES),
        send_to=("credits", "events"),
        dlq_depth_of=("credits", "events", "live"),
    ),
    # Ends interactive-play games whose heartbeat deadline passed (and writes their end event, then asks for
    # its push).
    "play_sweeper": Access(
        tables={
            "play-games": table(GET, BATCH_GET, UPDATE, indexes=("running",)),
            "play-streams": table(PUT),
        },
        send_to=("live",),
    ),
    # Live push (chalicelib/live). $connect: verify the auth_body (play key), refuse an ended game's or a banned
    # app's, take one of the game's connection slots and register the connection, ask for its first push.
    "websocket_connect": Access(
        tables={"live-connections": table(GET, QUERY, PUT), "play-games": table(GET), "play-guard": table(GET)},
        send_to=("live",),
        secrets=(PLAY_KEY,),
    ),
    # $default: ack, resume, ping (each counted on the connection); a resume or a ping of a connection behind
    # pushes (reads the stream: a reader never writes it) and answers over @connections.
    "websocket_message": Access(
        tables={"live-connections": table(GET, BATCH_GET, UPDATE, DELETE),
                "play-games": table(GET), "play-streams": table(QUERY)},
        send_to=("live",),
        manage_connections=True,
    ),
    # $disconnect: forget the connection.
    "websocket_disconnect": Access(
        tables={"live-connections": table(GET, DELETE)},
    ),
    # The push worker: fan-out, chunks, posts, cursors, removal of gone connections, retries.
    "live_push": Access(
        tables={"live-connections": table(GET, BATCH_GET, QUERY, UPDATE, DELETE),
                "play-games": table(GET), "play-streams": table(QUERY)},
        send_to=("live",),
        manage_connections=True,
    ),
    # Closes the due daily bills of interactive play (reconciling each day first) and places their credits.
    "play_bills": Access(
        tables={"play-config": table(QUERY), "play-settlement": table(GET, QUERY, BATCH_GET, PUT, UPDATE),
                **_GRANT_PATH},
        send_to=("credits",),
    ),
}
