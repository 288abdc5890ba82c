"""Receiving one callback: check, authenticate, store once, enqueue. Nothing is written before the
event is proven genuine, and `success` is only answered once it is durable.

Order of checks: size, JSON shape and fields (400 naming the field), then known tp app, timestamp
window, signature and decryption. These last fail with ONE generic rejection whatever the cause —
an unknown tp app id is answered exactly like a forged callback, so a prober can neither enumerate
configured tp apps nor learn why; the log and the `CallbackRejected` metric (by `reason`) record it.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib import clock
from chalicelib.callbacks import crypto, events, store
from chalicelib.callbacks.envelope import parse_envelope
from chalicelib.errors import CallbackRejected
from chalicelib.observability import count, count_by, logger
from chalicelib.secrets import get_tp_app
from chalicelib.settings import settings
from chalicelib.validate import IDENT


def check_fresh(timestamp_s: int, now_ms: int, max_skew_s: int) -> None:
    """Refuse a TimeStamp more than `max_skew_s` away from now, in either direction."""
    skew_s = timestamp_s - now_ms // 1000
    if skew_s < -max_skew_s:
        raise CallbackRejected("stale_timestamp")
    if skew_s > max_skew_s:
        raise CallbackRejected("future_timestamp")


@dataclass(frozen=True)
class Received:
    """The outcome of one accepted callback."""

    event_id: str
    duplicate: bool
    enqueued: bool


def receive(tp_app_id: str, channel: str, raw_body: bytes | str | None) -> Received:
    """Authenticate and store one callback; raises a domain error for every refusal."""
    config = settings()
    envelope = parse_envelope(raw_body, config.callback_max_body_bytes)
    now_ms = clock.now_ms()
    try:
        # An id that could never be configured is not worth a Secrets Manager lookup.
        credentials = get_tp_app(tp_app_id) if IDENT.fullmatch(tp_app_id) else None
        if credentials is None:
            raise CallbackRejected("unknown_tp_app")
        check_fresh(envelope.timestamp_s, now_ms, config.callback_max_skew_s)
        message = crypto.open_callback(
            credentials, envelope.timestamp, envelope.nonce, envelope.encrypt, envelope.msg_signature,
        )
    except CallbackRejected as rejected:
        logger.warning("callback rejected", extra={
            "tp_app_id": tp_app_id, "channel": channel, "reason": rejected.reason,
        })
        count("CallbacksRejected")  # the total, which the callback-rejections alarm watches
        count_by("CallbackRejected", "reason", rejected.reason)
        raise
    # Genuine from here on. The payload is kept as text; a platform bug sending invalid UTF-8 is kept
    # visible (marked MALFORMED by the worker) rather than refused and retried forever.
    payload = message.decode("utf-8", errors="replace")
    event_id = store.event_id_of(envelope.encrypt)
    record = store.new_event(event_id, tp_app_id, channel, payload, events.summarize(payload), now_ms)
    if not store.put_if_absent(record):
        count("CallbacksDuplicate")
        return Received(event_id, duplicate=True, enqueued=False)
    count("CallbacksStored")
    try:
        store.enqueue(event_id)
    except Exception:
        # Stored is what counts: the sweeper enqueues it after the SLA. Failing here would only make
        # the platform resend a callback we already hold.
        logger.exception("event stored but not enqueued; the sweeper will pick it up", extra={
            "event_id": event_id, "tp_app_id": tp_app_id,
        })
        return Received(event_id, duplicate=False, enqueued=False)
    return Received(event_id, duplicate=False, enqueued=True)
