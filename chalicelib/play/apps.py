"""Play apps: their configuration document, how an edit changes it, and where it is stored.

A share change never rewrites the past: it appends a ratio version that takes effect
`ratio_delay_ms()` after the edit, the time every API instance's configuration cache needs to learn
about it. So every instance settles a gift with the same version, decided only by the gift's arrival
time, without a database read per gift (see docs/explanation/interactive-play.md, "Settlement").
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import clock
from chalicelib import secrets as secret_store
from chalicelib.dynamo import error_code, with_retries
from chalicelib.errors import ConfigConflict, PlayAppExists, PlayAppNotFound, SandboxImmutable
from chalicelib.play.bans import BanPolicy
from chalicelib.play.config import DEFAULT_RATE_LIMITS, play_settings
from chalicelib.play.models import BanView, PlayAppPut, PlayAppView, RatioView
from chalicelib.play.settlement import Ratio
from chalicelib.play.tables import PlayConfigItem
from chalicelib.settings import settings

APPS_PK = "apps"


def app_sk(app_id: int) -> str:
    """Sort key of an app's document in the `apps` partition."""
    return f"app#{app_id}"


def ratio_delay_ms() -> int:
    """How long after an edit a new share ratio takes effect: the configuration cache's age, plus 1 s of clock slack."""
    cache_s = settings().config_cache_s
    return cache_s * 1000 + 1000 if cache_s > 0 else 0


@dataclass(frozen=True)
class PlayApp:
    """One developer's play app."""

    app_id: int
    name: str
    ratios: tuple[Ratio, ...]
    interactive_gift_ids: tuple[int, ...]
    sandbox: bool
    limits: Mapping[str, int] = field(default_factory=dict)
    access_key_id: str | None = None
    created_at_ms: int = 0
    updated_at_ms: int = 0

    @property
    def latest_ratio(self) -> Ratio:
        """The newest ratio version (it may not be in force yet)."""
        return max(self.ratios, key=lambda r: r.version)

    def rate_limit(self, api: str) -> int:
        """Calls per second the app may make to `api`."""
        return int(self.limits.get(api, DEFAULT_RATE_LIMITS[api]))

    def ban_policy(self) -> BanPolicy:
        """How the security centre bans this app."""
        defaults = play_settings()
        return BanPolicy(base_s=int(self.limits.get("ban_base_s", defaults.ban_base_s)),
                         cap_s=int(self.limits.get("ban_cap_s", defaults.ban_cap_s)),
                         quiet_s=int(self.limits.get("ban_quiet_s", defaults.ban_quiet_s)))

    def to_doc(self) -> dict[str, Any]:
        """The stored JSON document."""
        return {
            "app_id": self.app_id, "name": self.name,
            "ratios": [{"version": r.version, "share_bp": r.share_bp, "effective_from_ms": r.effective_from_ms}
                       for r in self.ratios],
            "interactive_gift_ids": list(self.interactive_gift_ids), "sandbox": self.sandbox,
            "limits": dict(self.limits), "access_key_id": self.access_key_id,
            "created_at_ms": self.created_at_ms, "updated_at_ms": self.updated_at_ms,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> PlayApp:
        """An app from its stored document."""
        return cls(
            app_id=int(doc["app_id"]), name=doc["name"],
            ratios=tuple(Ratio(int(r["version"]), int(r["share_bp"]), int(r["effective_from_ms"]))
                         for r in doc["ratios"]),
            interactive_gift_ids=tuple(int(g) for g in doc["interactive_gift_ids"]), sandbox=bool(doc["sandbox"]),
            limits={k: int(v) for k, v in doc.get("limits", {}).items()}, access_key_id=doc.get("access_key_id"),
            created_at_ms=int(doc["created_at_ms"]), updated_at_ms=int(doc["updated_at_ms"]),
        )

    def view(self, ban: BanView | None = None) -> PlayAppView:
        """The admin API's view."""
        limits = {**DEFAULT_RATE_LIMITS, **{k: v for k, v in self.limits.items() if k in DEFAULT_RATE_LIMITS}}
        policy = self.ban_policy()
        limits.update({"ban_base_s": policy.base_s, "ban_cap_s": policy.cap_s, "ban_quiet_s": policy.quiet_s})
        latest = self.latest_ratio
        return PlayAppView(
            app_id=self.app_id, name=self.name, share_bp=latest.share_bp, ratio_version=latest.version,
            ratios=[RatioView(version=r.version, share_bp=r.share_bp, effective_from_ms=r.effective_from_ms)
                    for r in self.ratios],
            interactive_gift_ids=list(self.interactive_gift_ids), sandbox=self.sandbox, limits=limits,
            access_key_id=self.access_key_id, created_at_ms=self.created_at_ms, updated_at_ms=self.updated_at_ms,
            security=ban,
        )


def apply_put(current: PlayApp | None, app_id: int, body: PlayAppPut, now_ms: int) -> PlayApp:
    """The app after a PUT. Pure. A changed share appends a ratio version effective after the cache delay."""
    limits = {} if body.limits is None else body.limits.model_dump(exclude_none=True)
    if current is None:
        return PlayApp(app_id=app_id, name=body.name, ratios=(Ratio(1, body.share_bp, now_ms),),
                       interactive_gift_ids=tuple(body.interactive_gift_ids), sandbox=body.sandbox, limits=limits,
                       created_at_ms=now_ms, updated_at_ms=now_ms)
    if body.sandbox != current.sandbox:
        raise SandboxImmutable(
            f"play app {app_id} is {'a sandbox' if current.sandbox else 'a live'} app; sandbox cannot change "
            "(create another app id)", app_id=app_id, sandbox=current.sandbox)
    ratios = current.ratios
    if body.share_bp != current.latest_ratio.share_bp:
        ratios = (*ratios, Ratio(current.latest_ratio.version + 1, body.share_bp, now_ms + ratio_delay_ms()))
    return replace(current, name=body.name, ratios=ratios, interactive_gift_ids=tuple(body.interactive_gift_ids),
                   limits=limits, updated_at_ms=now_ms)


# --- storage -----------------------------------------------------------------------------------

_cache: dict[int, tuple[float, PlayApp | None]] = {}
_cache_lock = threading.Lock()


def _load(app_id: int) -> tuple[PlayApp, int] | None:
    try:
        item = with_retries(lambda: PlayConfigItem.get(APPS_PK, app_sk(app_id), consistent_read=True))
    except DoesNotExist:
        return None
    return PlayApp.from_doc(json.loads(item.body)), int(item.rev or 0)


def get_app(app_id: int) -> PlayApp:
    """An app (cached for `RG_CONFIG_CACHE_S`); `PlayAppNotFound` if it is not configured."""
    ttl = settings().config_cache_s
    hit = _cache.get(app_id)
    if ttl > 0 and hit is not None and time.monotonic() - hit[0] < ttl:
        app = hit[1]
    else:
        loaded = _load(app_id)
        app = loaded[0] if loaded else None
        if ttl > 0:
            with _cache_lock:
                _cache[app_id] = (time.monotonic(), app)
    if app is None:
        raise PlayAppNotFound(f"play app {app_id} is not configured", app_id=app_id)
    return app


# An open-live access key id names its app (`rgak-{app_id}-...`), so a forger picks any app id. As issue 10 did
# for tp app ids (chalicelib/secrets.py): app ids found missing are remembered MISS_CACHE_S in a bounded memory
# (least recently missed forgotten first), and app ids this process has never found are budgeted (LOOKUP_BURST
# at once, LOOKUPS_PER_S after that); over budget an unseen id is answered unknown (4002) without a read. A
# flood of forged ids thus costs at most that many play-config reads per second per API instance, and an app
# this process has served is never refused for it.
MISS_CACHE_S = secret_store.MISS_CACHE_S
MISS_CACHE_MAX = secret_store.MISS_CACHE_MAX
_misses: OrderedDict[int, float] = OrderedDict()
_found: set[int] = set()
_budget = secret_store._LookupBudget(secret_store.LOOKUPS_PER_S, secret_store.LOOKUP_BURST)


def find_app(app_id: int) -> PlayApp | None:
    """An app named by untrusted input (a request's access key id), or None; bounded cost for unknown ids."""
    missed_at = _misses.get(app_id)
    if missed_at is not None and time.monotonic() - missed_at < MISS_CACHE_S:
        return None
    if app_id not in _found and not _budget.take():
        return None
    try:
        app = get_app(app_id)
    except PlayAppNotFound:
        with _cache_lock:
            _misses[app_id] = time.monotonic()
            _misses.move_to_end(app_id)
            while len(_misses) > MISS_CACHE_MAX:
                _misses.popitem(last=False)
        return None
    with _cache_lock:
        _misses.pop(app_id, None)
        _found.add(app_id)
    return app


def miss_cache_size() -> int:
    """How many unknown app ids are remembered now (bounded by MISS_CACHE_MAX)."""
    return len(_misses)


def get_app_uncached(app_id: int) -> PlayApp:
    """An app read straight from the table."""
    loaded = _load(app_id)
    if loaded is None:
        raise PlayAppNotFound(f"play app {app_id} is not configured", app_id=app_id)
    return loaded[0]


def invalidate() -> None:
    """Forget cached apps and remembered misses (after an edit in this process, and in tests)."""
    with _cache_lock:
        _cache.clear()
        _misses.clear()


def _save(app: PlayApp, expected_rev: int | None) -> None:
    item = PlayConfigItem(APPS_PK, app_sk(app.app_id), body=json.dumps(app.to_doc(), sort_keys=True),
                          rev=(expected_rev or 0) + 1, updated_at_ms=app.updated_at_ms)
    condition = PlayConfigItem.pk.does_not_exist() if expected_rev is None else PlayConfigItem.rev == expected_rev
    try:
        with_retries(lambda: item.save(condition=condition))
    except PutError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
        if expected_rev is None:
            raise PlayAppExists(f"play app {app.app_id} already exists", app_id=app.app_id) from exc
        raise ConfigConflict("the play app changed concurrently; re-read and retry", app_id=app.app_id) from exc
    invalidate()
    with _cache_lock:
        _found.add(app.app_id)  # this process wrote it: reading it back is not a guess


def put_app(app_id: int, body: PlayAppPut, create_only: bool = False) -> PlayApp:
    """Create or replace an app's configuration (its access key is kept)."""
    loaded = _load(app_id)
    if loaded is not None and create_only:
        raise PlayAppExists(f"play app {app_id} already exists", app_id=app_id)
    current, rev = loaded if loaded else (None, None)
    app = apply_put(current, app_id, body, clock.now_ms())
    _save(app, rev)
    return app


def set_access_key_id(app_id: int, access_key_id: str) -> PlayApp:
    """Record which access key id the app's secret holds (the id is not secret; the admin API shows it)."""
    loaded = _load(app_id)
    if loaded is None:
        raise PlayAppNotFound(f"play app {app_id} is not configured", app_id=app_id)
    app, rev = loaded
    updated = replace(app, access_key_id=access_key_id, updated_at_ms=clock.now_ms())
    _save(updated, rev)
    return updated


def list_apps() -> list[PlayApp]:
    """Every play app, by id."""
    items = with_retries(lambda: list(PlayConfigItem.query(APPS_PK, PlayConfigItem.sk.startswith("app#"),
                                                           consistent_read=True)))
    return sorted((PlayApp.from_doc(json.loads(i.body)) for i in items), key=lambda a: a.app_id)

