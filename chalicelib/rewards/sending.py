"""Sending credit messages: after a grant commits, and again for orders whose first send failed.

An order whose send fails is flagged with `unsent_bucket` (the sparse `ledger/unsent` index), which the
rewards sweeper reads to send it again; if even the flag cannot be written, the hourly reconciliation
re-drives the order (it is ACCEPTED past its SLA). Crediting is idempotent, so a message sent twice costs
one "already credited" answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib import clients, deadline
from chalicelib.dynamo import with_retries
from chalicelib.observability import logger
from chalicelib.queues import CREDITS
from chalicelib.rewards import ids, orders
from chalicelib.rewards.orders import Order
from chalicelib.rewards.tables import ACCEPTED, LedgerEntry
from chalicelib.settings import settings


def _mark_unsent(order: Order) -> None:
    bucket = str(ids.bucket_of(order.order_key, settings().hour_buckets))
    try:
        with_retries(lambda: LedgerEntry(order.wallet_id, order.entry_key).update(
            actions=[LedgerEntry.unsent_bucket.set(bucket)], condition=LedgerEntry.status == ACCEPTED))
    except Exception:
        # Nothing more can be done from here; the hourly reconciliation re-drives ACCEPTED orders.
        logger.exception("could not flag an unsent order", extra={"order_key": order.order_key})


def enqueue(batch: Sequence[Order]) -> int:
    """Send credit messages (10 per request); flag the orders whose send failed. Returns how many failed."""
    failed: list[Order] = []
    for start in range(0, len(batch), 10):
        chunk = batch[start:start + 10]
        try:
            answer = clients.sqs().send_message_batch(
                QueueUrl=clients.queue_url(CREDITS.name),
                Entries=[{"Id": str(i), "MessageBody": orders.credit_message(o)} for i, o in enumerate(chunk)],
            )
            failed.extend(chunk[int(f["Id"])] for f in answer.get("Failed", []))
        except Exception:
            logger.exception("credit enqueue failed", extra={"orders": len(chunk)})
            failed.extend(chunk)
    for order in failed:
        _mark_unsent(order)
    return len(failed)


def resend_unsent(limit_per_bucket: int = 200) -> int:
    """Re-send the credit messages of orders flagged `unsent` (the sweeper). Returns how many were sent.

    Sends 10 at a time and stops at the first send that fails (SQS is down or hanging: every further send would
    cost a call's bound and fail too); the orders not sent keep their flag for the next run. Stops too once the
    deadline has passed.
    """
    resent = 0
    for bucket in range(settings().hour_buckets):
        if deadline.expired():
            return resent
        keys = with_retries(lambda b=bucket: [
            (item.wallet_id, item.entry_key) for item in LedgerEntry.unsent.query(str(b), limit=limit_per_bucket)])
        if not keys:
            continue
        items = with_retries(lambda k=keys: list(LedgerEntry.batch_get(k, consistent_read=True)))
        accepted = [orders.from_item(i) for i in items if i.status == ACCEPTED]
        for start in range(0, len(accepted), 10):
            chunk = accepted[start:start + 10]
            if enqueue(chunk):
                logger.warning("credit re-send failed; the next sweep goes on", extra={"resent": resent})
                return resent
            for order in chunk:
                with_retries(lambda o=order: LedgerEntry(o.wallet_id, o.entry_key).update(
                    actions=[LedgerEntry.unsent_bucket.remove()]))
            resent += len(chunk)
    return resent
