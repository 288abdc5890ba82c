"""Daily bills: what a day (UTC+8) of an app's interactive gifts earned the developer, and the credit.

A day closes at 00:30 UTC+8 the next day (the `play_bills` schedule, every 10 minutes, closes whatever
is due, oldest day first per app). Before closing, the day is reconciled (every entry partition against
its counter); a day with a discrepancy is held, reported and retried, never closed on wrong figures.
Closing puts the bill (immutable: put-if-absent) and moves the app's cursor (last closed day,
cumulative developer share) in one transaction. The bill records its credit's order id then, with a random
part: `play-app-{app_id}_bill_{YYYYMMDD}.{nonce}_cash_1`, so a retry re-uses it and nobody can predict it.

The credit is internal money (`chalicelib.rewards.internal`), never a grant: its order is written straight
into the wallet of act id `play-app-{app_id}` in the child `formal` of the activity `RG_PLAY_BILL_ACTIVITY`
(`play-bills`; sandbox apps: `play-bills-sandbox`), an activity the public grant and admin routes refuse to
name; then the credit message is sent (a failed send is flagged and re-sent by the rewards sweeper) and the
credit worker credits it exactly once. Amounts: platform units (1 000 = ¥1) in the bill; fen in the wallet,
floor(cumulative share / 10) in total, so the sub-fen remainder of a day is carried, never lost.

Bills closed before the internal path carry the old, guessable order id `play-app-{app_id}_bill_{YYYYMMDD}_cash_1`
(`legacy_order_id`). A PLACED one is left as it is (its credit exists under that id; reconciliation checks it).
A PENDING one is credited under that id when the id is free, or when the order there is exactly this credit
(placed by an earlier run); when another order holds it (a grant caller pre-empted it), the bill's order id is
replaced by a fresh random one (a conditional update: only while PENDING and still the old id) and credited
under that; the pre-empting order is left for reconciliation to report (`credit_without_bill`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib import clock
from chalicelib.dynamo import cancellation_codes, connection, error_code, with_retries
from chalicelib.errors import ActivityNotFound, ConfigConflict, RewardgateError, SceneNotFound
from chalicelib.observability import logger
from chalicelib.play import apps, reconcile, settlement
from chalicelib.play.bill_keys import (
    BILL_CHILD,
    BILL_ORDER_CAP,
    BILL_SCENE,
    BILL_TEXT,
    CURSOR_SK,
    MAX_DAYS_PER_RUN,
    NONE,
    PENDING,
    PLACED,
    bill_activity,
    bill_pk,
    credit_order_id,
    legacy_order_id,
    wallet_act_id,
)
from chalicelib.play.models import CreditView, SettlementView
from chalicelib.play.tables import PlaySettlementItem
from chalicelib.rewards import internal


@dataclass(frozen=True)
class DayTotals:
    """A day's figures from the hour counters."""

    gifts: int = 0
    revenue: int = 0
    developer_share: int = 0
    ratio_versions: frozenset[int] = frozenset()


def day_totals(app_id: int, day: str) -> DayTotals:
    """Sum of the hour counters of a day (24 hours x buckets shards, one batch read)."""
    keys = [(pk, settlement.COUNTER_SK) for hour in settlement.day_hours(day)
            for pk in reconcile.hour_partitions(app_id, hour)]
    items = with_retries(lambda: list(PlaySettlementItem.batch_get(keys, consistent_read=True)))
    return DayTotals(gifts=sum(int(i.gifts or 0) for i in items), revenue=sum(int(i.revenue or 0) for i in items),
                     developer_share=sum(int(i.developer_share or 0) for i in items),
                     ratio_versions=frozenset(int(v) for i in items for v in (i.ratio_versions or ())))


def _get(app_id: int, sk: str) -> PlaySettlementItem | None:
    try:
        return with_retries(lambda: PlaySettlementItem.get(bill_pk(app_id), sk, consistent_read=True))
    except DoesNotExist:
        return None


def _credit_view(app: apps.PlayApp, bill: PlaySettlementItem) -> CreditView:
    return CreditView(order_id=bill.credit_order_id, activity_id=bill_activity(app),
                      wallet_act_id=wallet_act_id(app.app_id), amount_fen=int(bill.credit_fen or 0),
                      status=bill.credit_status or NONE)


def settlement_view(app_id: int, day: str) -> SettlementView:
    """A day's settlement: the closed bill, or the running figures while it is open."""
    app = apps.get_app(app_id)
    bill = _get(app_id, settlement.day_key(day))
    closes = settlement.bill_closes_at_ms(day)
    if bill is not None:
        return SettlementView(app_id=app_id, day=day, gifts=int(bill.gifts), revenue=int(bill.revenue),
                              developer_share=int(bill.developer_share), closed=True,
                              ratio_versions=sorted(int(v) for v in (bill.ratio_versions or ())), closes_at_ms=closes,
                              cumulative_share=int(bill.cumulative_share), credit=_credit_view(app, bill))
    totals = day_totals(app_id, day)
    return SettlementView(app_id=app_id, day=day, gifts=totals.gifts, revenue=totals.revenue,
                          developer_share=totals.developer_share, closed=False,
                          ratio_versions=sorted(totals.ratio_versions), closes_at_ms=closes)


# --- closing -------------------------------------------------------------------------------------


@dataclass
class CloseReport:
    """What a closing run did."""

    closed: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    credited: list[str] = field(default_factory=list)
    credit_failed: list[str] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        """JSON form."""
        return {"closed": self.closed, "held": self.held, "credited": self.credited,
                "credit_failed": self.credit_failed}


def _day_findings(app: apps.PlayApp, day: str) -> list[reconcile.PlayFinding]:
    found = []
    for hour in settlement.day_hours(day):
        found += reconcile.check_app_hour(app, hour, with_events=False).findings
    return found


def close_day(app: apps.PlayApp, day: str, cursor: PlaySettlementItem | None) -> str:
    """Close one day: "closed", "held" (a discrepancy) or "exists" (someone closed it first)."""
    findings = _day_findings(app, day)
    if findings:
        for finding in findings:
            logger.error("play bill held: discrepancy", extra={"app_id": app.app_id, "day": day, **finding.as_dict()})
        return "held"
    totals = day_totals(app.app_id, day)
    before = int(cursor.cumulative_share) if cursor is not None else 0
    after = before + totals.developer_share
    fen = settlement.credit_fen(before, after)
    now_ms = clock.now_ms()
    order_id = credit_order_id(app.app_id, day, internal.new_nonce()) if fen else None  # re-used by every retry
    bill = PlaySettlementItem(
        bill_pk(app.app_id), settlement.day_key(day), app_id=app.app_id, day=day, gifts=totals.gifts,
        revenue=totals.revenue, developer_share=totals.developer_share,
        ratio_versions=set(totals.ratio_versions) or None, cumulative_share=after, credit_fen=fen,
        credit_status=PENDING if fen > 0 else NONE, credit_order_id=order_id,
        closed_at_ms=now_ms, test=app.sandbox or None)
    moved = PlaySettlementItem(bill_pk(app.app_id), CURSOR_SK, app_id=app.app_id, through_day=day,
                               cumulative_share=after, closed_at_ms=now_ms)
    cursor_condition = (PlaySettlementItem.sk.does_not_exist() if cursor is None
                        else PlaySettlementItem.through_day == cursor.through_day)

    def attempt() -> None:
        with TransactWrite(connection=connection()) as tx:
            tx.save(bill, condition=PlaySettlementItem.sk.does_not_exist())
            tx.save(moved, condition=cursor_condition)

    try:
        with_retries(attempt)
    except TransactWriteError as exc:
        if "ConditionalCheckFailed" in cancellation_codes(exc):
            return "exists"
        raise
    logger.info("play bill closed", extra={"app_id": app.app_id, "day": day, "developer_share": totals.developer_share,
                                           "credit_fen": fen})
    return "closed"


def ensure_bill_activity(activity_id: str) -> None:
    """The rewards activity and cash scene bills are credited in, created on first use.

    Several instances may get here first together: a creation that loses the race (`ConfigConflict`) is fine
    when the item now exists (the winner made the same one).
    """
    from chalicelib.rewards import config_store
    from chalicelib.rewards.config import Activity, Child, parse_scene

    def activity() -> None:
        child = Child(BILL_CHILD, "formal", 1_577_836_800_000, 4_102_444_800_000)  # 2020-01-01 .. 2100-01-01 UTC
        config_store.put_activity(Activity(activity_id, "Interactive play bills", (child,)))

    def scene() -> None:
        config_store.put_scene(parse_scene(activity_id, BILL_SCENE, {
            "award_type": "cash", "stock_control": False, "order_cap": BILL_ORDER_CAP, "bill_text": BILL_TEXT}))

    _create_once(lambda: config_store.get_activity_uncached(activity_id), activity, ActivityNotFound)
    _create_once(lambda: config_store.get_scene(activity_id, BILL_SCENE), scene, SceneNotFound)


def _create_once(read: Callable[[], object], create: Callable[[], None], absent: type[Exception]) -> None:
    try:
        read()
        return
    except absent:
        pass
    try:
        create()
    except ConfigConflict:
        from chalicelib.rewards import config_store

        config_store.invalidate()  # this instance's cache may hold the absence it saw first
        read()  # created concurrently by another instance; still absent raises `absent`


def bill_credit(app: apps.PlayApp, bill: PlaySettlementItem) -> internal.InternalCredit:
    """The internal credit a closed bill pays, under the order id the bill recorded."""
    act_id, scene_id, rain_id, _award, stage = bill.credit_order_id.split("_")
    return internal.InternalCredit(activity_id=bill_activity(app), sub_activity_id=BILL_CHILD, scene_id=scene_id,
                                   act_id=act_id, rain_id=rain_id, stage=stage, amount=int(bill.credit_fen),
                                   bill_text=BILL_TEXT)


def _rekeyed(app: apps.PlayApp, bill: PlaySettlementItem) -> PlaySettlementItem:
    """A PENDING bill of the old layout whose guessable order id another order holds: a fresh random id, recorded
    on the bill before any credit is written (only while PENDING with the old id); the bill as it now stands."""
    legacy = bill.credit_order_id
    fresh = credit_order_id(app.app_id, bill.day, internal.new_nonce())
    try:
        with_retries(lambda: bill.update(actions=[PlaySettlementItem.credit_order_id.set(fresh)],
                                         condition=(PlaySettlementItem.credit_status == PENDING)
                                         & (PlaySettlementItem.credit_order_id == legacy)))
    except UpdateError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
        bill = _get(app.app_id, bill.sk) or bill  # another run re-keyed (or placed) it first: follow the bill
    logger.warning("play bill credit re-keyed: its old order id is held by another order",
                   extra={"app_id": app.app_id, "day": bill.day, "old_order_id": legacy,
                          "order_id": bill.credit_order_id})
    return bill


def _migrated(app: apps.PlayApp, bill: PlaySettlementItem) -> PlaySettlementItem:
    """A PENDING bill of the old layout, ready to credit: its old id when free or already this credit."""
    if bill.credit_order_id != legacy_order_id(app.app_id, bill.day):
        return bill
    credit = bill_credit(app, bill)
    stored = internal.find(credit.wallet_id, credit.order_id)
    if stored is None or internal.same_credit(stored, internal.decide(credit, clock.now_ms(), 1)):
        return bill
    return _rekeyed(app, bill)


def place_credit(app: apps.PlayApp, bill: PlaySettlementItem) -> str:
    """Write a closed bill's internal credit (idempotent by its recorded order id), send it to the credit worker
    and mark the bill PLACED; returns the order id. No reward token is signed (nobody presents one for a bill).
    """
    from chalicelib.rewards.sending import enqueue
    from chalicelib.rewards.tables import CREDITED

    ensure_bill_activity(bill_activity(app))  # wallet reads and withdrawals find the bill wallet's child by it
    bill = _migrated(app, bill)
    order, _created = internal.place(bill_credit(app, bill))
    if order.status != CREDITED:
        # Crediting is idempotent: re-sending for an order placed by an earlier, interrupted run is harmless.
        enqueue([order])
    try:
        with_retries(lambda: bill.update(actions=[PlaySettlementItem.credit_status.set(PLACED)],
                                         condition=(PlaySettlementItem.credit_status == PENDING)
                                         & (PlaySettlementItem.credit_order_id == order.order_id)))
    except UpdateError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
    return order.order_id


def _pending_bills(app_id: int, days: Iterable[str]) -> list[PlaySettlementItem]:
    keys = [(bill_pk(app_id), settlement.day_key(d)) for d in days]
    items = with_retries(lambda: list(PlaySettlementItem.batch_get(keys, consistent_read=True))) if keys else []
    return sorted((i for i in items if i.credit_status == PENDING), key=lambda i: i.sk)


def close_due(now_ms: int | None = None, deadline_s: float | None = None,
              app_ids: Iterable[int] | None = None, on_app: Callable[[], None] | None = None) -> CloseReport:
    """Close every due day of every app (or of `app_ids`), oldest first; place every pending credit of the
    last two months. `on_app` is called after each app (the CLI's progress bar)."""
    now_ms = clock.now_ms() if now_ms is None else now_ms
    stop_at = None if deadline_s is None else time.monotonic() + deadline_s
    latest = settlement.latest_closable_day(now_ms)
    report = CloseReport()
    chosen = None if app_ids is None else set(app_ids)
    for app in apps.list_apps():
        if chosen is not None and app.app_id not in chosen:
            continue
        cursor = _get(app.app_id, CURSOR_SK)
        day = (settlement.next_day(cursor.through_day) if cursor is not None
               else settlement.day_of(app.created_at_ms))
        for _ in range(MAX_DAYS_PER_RUN):
            if day > latest or (stop_at is not None and time.monotonic() > stop_at):
                break
            outcome = close_day(app, day, cursor)
            if outcome == "held":
                report.held.append(f"{app.app_id}/{day}")
                break  # days close in order: the cumulative share depends on every day before
            if outcome == "closed":
                report.closed.append(f"{app.app_id}/{day}")
            cursor = _get(app.app_id, CURSOR_SK)
            day = settlement.next_day(day)
        recent = [settlement.next_day(latest, -back) for back in range(MAX_DAYS_PER_RUN)]
        for bill in _pending_bills(app.app_id, recent):
            try:
                report.credited.append(place_credit(app, bill))
            except RewardgateError as error:
                # Retried by the next run (every 10 minutes); the bill stays PENDING.
                logger.warning("play bill credit not placed", extra={"app_id": app.app_id, "day": bill.day,
                                                                     "error": error.code})
                report.credit_failed.append(f"{app.app_id}/{bill.day}")
        if on_app is not None:
            on_app()
    return report
