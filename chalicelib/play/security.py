"""The security centre: nonces, per-app per-API rate limits and escalating bans, held in DynamoDB.

Everything is in the guard table, so limits and bans hold across Lambda instances. Per signed call:
one nonce put-if-absent (a replay is refused), one strongly consistent read of the app's ban, one ADD
on the counter of (app, API, this second). The call that takes a counter past its limit records one
offence (at most one per app, API and second) and bans the app for `bans.ban_duration_s`; every call
of a banned app is answered 4009 until the ban ends. Metrics per app: calls, errors by code, bans.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import clock
from chalicelib.dynamo import error_code, with_retries
from chalicelib.errors import NonceReplayed, PlayRateLimited, StorageUnavailable
from chalicelib.observability import emit_now, logger
from chalicelib.play import bans
from chalicelib.play.apps import PlayApp
from chalicelib.play.config import play_settings
from chalicelib.play.tables import PlayGuardItem

RATE_WINDOW_TTL_S = 120
BAN_TTL_S = 400 * 24 * 3600
OFFENCE_ATTEMPTS = 10


def _ban_pk(app_id: int) -> str:
    return f"ban#{app_id}"


def use_nonce(app_id: int, nonce: str, now_ms: int) -> None:
    """Record a nonce; `NonceReplayed` when the app used it less than twice the signature window ago.

    A request's timestamp may be up to one window off either way, so a nonce must be remembered for two
    windows, and is remembered for no longer: the put-if-absent treats an item whose `expires_at` has
    passed as absent (DynamoDB's TTL deletes within days, DynamoDB Local never; the TTL only sweeps).
    """
    ttl_ms = 2 * play_settings().signature_window_s * 1000
    item = PlayGuardItem(f"nonce#{app_id}#{nonce}", "n", at_ms=now_ms, expires_at=clock.utc_datetime(now_ms + ttl_ms))
    free = PlayGuardItem.pk.does_not_exist() | (PlayGuardItem.expires_at < clock.utc_datetime(now_ms))
    try:
        with_retries(lambda: item.save(condition=free))
    except PutError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            raise NonceReplayed("x-bili-signature-nonce was already used") from exc
        raise


def ban_state(app_id: int) -> bans.BanState:
    """What the security centre holds about an app (strongly consistent)."""
    try:
        item = with_retries(lambda: PlayGuardItem.get(_ban_pk(app_id), "b", consistent_read=True))
    except DoesNotExist:
        return bans.BanState()
    return bans.BanState(offences=int(item.offences or 0), banned_until_ms=int(item.banned_until_ms or 0),
                         last_offence_ms=int(item.last_offence_ms or 0))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def admit(app: PlayApp, api: str, now_ms: int) -> None:
    """Count one call of `api`; `PlayRateLimited` (4009) if the app is banned or this call is over the limit."""
    state = ban_state(app.app_id)
    if bans.banned(state, now_ms):
        raise PlayRateLimited(f"app {app.app_id} is banned until {_iso(state.banned_until_ms)} (security centre)")
    second = now_ms // 1000
    window = PlayGuardItem(f"rate#{app.app_id}#{api}#{second}", "r")
    with_retries(lambda: window.update(actions=[
        PlayGuardItem.count.add(1),
        PlayGuardItem.expires_at.set(clock.utc_datetime(now_ms + RATE_WINDOW_TTL_S * 1000)),
    ]))
    limit = app.rate_limit(api)
    count = int(window.count)
    if count <= limit:
        return
    if count == limit + 1:  # exactly one call per window crosses the limit: one offence per second
        after = offend(app, now_ms)
        raise PlayRateLimited(f"{api} is limited to {limit} calls/s; app {app.app_id} is banned until "
                              f"{_iso(after.banned_until_ms)} (offence {after.offences})")
    raise PlayRateLimited(f"{api} is limited to {limit} calls/s")


def offend(app: PlayApp, now_ms: int) -> bans.BanState:
    """Record an offence: the ban grows with the offences still remembered."""
    policy = app.ban_policy()
    for _ in range(OFFENCE_ATTEMPTS):
        state = ban_state(app.app_id)
        after = bans.offend(state, now_ms, policy)
        item = PlayGuardItem(_ban_pk(app.app_id), "b", app_id=app.app_id, offences=after.offences,
                             banned_until_ms=after.banned_until_ms, last_offence_ms=after.last_offence_ms,
                             at_ms=now_ms, expires_at=clock.utc_datetime(after.banned_until_ms + BAN_TTL_S * 1000))
        condition = (PlayGuardItem.pk.does_not_exist() if state == bans.BanState()
                     else PlayGuardItem.last_offence_ms == state.last_offence_ms)
        try:
            with_retries(lambda i=item, c=condition: i.save(condition=c))
        except PutError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                continue  # another instance recorded an offence meanwhile: decide again on its state
            raise
        metric("PlayBans", app.app_id)
        logger.warning("play app banned", extra={"app_id": app.app_id, "offences": after.offences,
                                                 "banned_until": _iso(after.banned_until_ms)})
        return after
    raise StorageUnavailable("the ban kept changing; retry")


def unban(app_id: int) -> bans.BanState:
    """Lift an app's ban and forget its offences; returns what was held before."""
    before = ban_state(app_id)
    with_retries(lambda: PlayGuardItem(_ban_pk(app_id), "b").delete())
    return before


def metric(name: str, app_id: int | None, **dimensions: str) -> None:
    """One EMF metric now (no API call) with the stage and the app (`-` for none) as dimensions."""
    emit_now(name, 1, app_id=str(app_id) if app_id is not None else "-", **dimensions)
