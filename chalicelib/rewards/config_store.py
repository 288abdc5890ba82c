"""Configuration in the config table, with a short in-process cache for the grant hot path.

A grant must not pay a database read for configuration, so activities, scenes and switches are cached
for `RG_CONFIG_CACHE_S` seconds (default 5). What that staleness can and cannot do is bounded by the
design: stock and budget are enforced by the shard items themselves, never by the cached total, so a
stale cache can at worst refuse or admit a grant by a switch or cap that changed seconds ago.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import clock
from chalicelib.dynamo import error_code, with_retries
from chalicelib.errors import ActivityNotFound, ConfigConflict, SceneNotFound, TotalBelowConsumed
from chalicelib.rewards import counters
from chalicelib.rewards.config import (
    CLOCK_SKEW_MS,
    Activity,
    Child,
    Scene,
    Switches,
    Terms,
    next_history,
    parse_scene,
    terms_lead_ms,
)
from chalicelib.rewards.config_changes import check_award_type_kept, check_children_change
from chalicelib.rewards.ids import stock_counter_id
from chalicelib.rewards.tables import ConfigItem
from chalicelib.settings import settings

T = TypeVar("T")

SWITCH_PK = "switch"

_cache: dict[tuple[str, ...], tuple[float, Any]] = {}
_cache_lock = threading.Lock()


def _cached(key: tuple[str, ...], load: Callable[[], T]) -> T:
    ttl = settings().config_cache_s
    if ttl > 0:
        hit = _cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < ttl:
            return hit[1]
    value = load()
    if ttl > 0:
        with _cache_lock:
            _cache[key] = (time.monotonic(), value)
    return value


def invalidate() -> None:
    """Forget cached configuration (after an admin write in this process)."""
    with _cache_lock:
        _cache.clear()


def _activity_pk(activity_id: str) -> str:
    return f"activity#{activity_id}"


def _scene_sk(scene_id: str) -> str:
    return f"scene#{scene_id}"


def _activity_from_item(item: ConfigItem) -> Activity:
    body = json.loads(item.body)
    return Activity(
        activity_id=body["activity_id"],
        name=body["name"],
        children=tuple(Child(**c) for c in body["children"]),
    )


def _scene_from_item(activity_id: str, scene_id: str, item: ConfigItem) -> Scene:
    body = json.loads(item.body)
    history = tuple(Terms(**t) for t in body.pop("history", []))
    return replace(parse_scene(activity_id, scene_id, body, version=int(item.version or 0)), history=history)


def _get_item(pk: str, sk: str) -> ConfigItem | None:
    try:
        return with_retries(lambda: ConfigItem.get(pk, sk, consistent_read=True))
    except DoesNotExist:
        return None


# --- reads -----------------------------------------------------------------------------------


def get_activity(activity_id: str) -> Activity:
    """An activity (cached); `ActivityNotFound` if it is not configured."""

    def load() -> Activity | None:
        item = _get_item(_activity_pk(activity_id), "meta")
        return _activity_from_item(item) if item else None

    found = _cached(("activity", activity_id), load)
    if found is None:
        raise ActivityNotFound(f"activity {activity_id} is not configured", activity_id=activity_id)
    return found


def get_scene(activity_id: str, scene_id: str) -> Scene:
    """A scene of an activity (cached); `SceneNotFound` if it is not configured."""

    def load() -> Scene | None:
        item = _get_item(_activity_pk(activity_id), _scene_sk(scene_id))
        return _scene_from_item(activity_id, scene_id, item) if item else None

    found = _cached(("scene", activity_id, scene_id), load)
    if found is None:
        raise SceneNotFound(
            f"scene {scene_id} of activity {activity_id} is not configured", activity_id=activity_id, scene_id=scene_id
        )
    return found


def list_activities() -> list[Activity]:
    """Every activity (a scan of the config table, which holds only configuration: operator reads only)."""
    items = with_retries(lambda: list(ConfigItem.scan(ConfigItem.sk == "meta", consistent_read=True)))
    found = [_activity_from_item(i) for i in items if i.pk.startswith("activity#")]
    return sorted(found, key=lambda a: a.activity_id)


def list_scenes(activity_id: str) -> list[Scene]:
    """Every scene of an activity (uncached, strongly consistent)."""
    items = with_retries(lambda: list(ConfigItem.query(
        _activity_pk(activity_id), ConfigItem.sk.startswith("scene#"), consistent_read=True
    )))
    return [_scene_from_item(activity_id, item.sk.split("#", 1)[1], item) for item in items]


def get_switches() -> Switches:
    """The degradation switches in force (cached)."""

    def load() -> Switches:
        items = with_retries(lambda: list(ConfigItem.query(SWITCH_PK, consistent_read=True)))
        return Switches(values={item.sk: json.loads(item.body) for item in items})

    return _cached(("switches",), load)


# --- writes ----------------------------------------------------------------------------------


def _save(pk: str, sk: str, body: dict[str, Any], expected_version: int | None) -> int:
    """Write a config document; fail with `ConfigConflict` if someone else wrote it meanwhile."""
    item = ConfigItem(pk, sk, body=json.dumps(body, sort_keys=True), updated_at_ms=clock.now_ms())
    if expected_version is not None:
        # PynamoDB conditions the save on this version (or on absence when unset) and increments it.
        item.version = expected_version
    try:
        with_retries(item.save)
    except PutError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            raise ConfigConflict("the configuration changed concurrently; re-read and retry") from exc
        raise
    invalidate()
    return int(item.version)


def put_activity(activity: Activity) -> Activity:
    """Create or replace an activity, then make sure every scene has counters in every child.

    A change that drops a started child, or moves an open time a grant may still name into another child, is
    refused before anything is written (`check_children_change`); the save is conditional on the version read.
    """
    current = _get_item(_activity_pk(activity.activity_id), "meta")
    check_children_change(
        _activity_from_item(current) if current else None, activity, clock.now_ms(),
        behind_ms=settings().grant_retry_horizon_s * 1000 + CLOCK_SKEW_MS,
        ahead_ms=terms_lead_ms(settings().config_cache_s),
    )
    _save(_activity_pk(activity.activity_id), "meta", activity.to_body(), current.version if current else None)
    for scene in list_scenes(activity.activity_id):
        if scene.stock_control:
            for child in activity.children:
                counters.respread(stock_counter_id(activity.ns(child), scene.scene_id),
                                  scene.total, scene.shard_count, scene.version)
    return activity


def put_scene(scene: Scene) -> Scene:
    """Create or replace a scene; re-spread its counters in every child without ever over-committing.

    Order of effects, so the caps never sum above the old or the new total at any moment:
    1. refuse a total below what any child already consumed (nothing changed);
    2. apply cap decreases (stamped with the new version);
    3. save the document (conditional on the version read in step 1);
    4. apply the increases. A crash in between leaves caps too low, never too high: repeating the
       PUT converges.
    """
    activity = get_activity_uncached(scene.activity_id)
    current = _get_item(_activity_pk(scene.activity_id), _scene_sk(scene.scene_id))
    previous = _scene_from_item(scene.activity_id, scene.scene_id, current) if current else None
    check_award_type_kept(previous, scene)
    new_version = (int(current.version) if current else 0) + 1
    counter_ids = [stock_counter_id(activity.ns(child), scene.scene_id) for child in activity.children]
    if scene.stock_control:
        for counter_id in counter_ids:
            consumed = sum(s.consumed for s in counters.read_shards(counter_id))
            if consumed > scene.total:
                raise TotalBelowConsumed(
                    f"total {scene.total} is below the {consumed} already consumed ({counter_id})",
                    total=scene.total, consumed=consumed,
                )
        for counter_id in counter_ids:
            # strict: a grant that landed after the check above must turn this into TotalBelowConsumed,
            # not into caps clamped at a consumption above the new total.
            counters.respread(counter_id, scene.total, scene.shard_count, new_version, decreases_only=True,
                              strict=True)
    history = next_history(previous, scene, clock.now_ms(), terms_lead_ms(settings().config_cache_s),
                           settings().grant_retry_horizon_s * 1000)
    saved = replace(scene, history=history)
    version = _save(_activity_pk(scene.activity_id), _scene_sk(scene.scene_id),
                    {**saved.to_body(), "history": saved.history_body()}, int(current.version) if current else None)
    if scene.stock_control:
        for counter_id in counter_ids:
            counters.respread(counter_id, scene.total, scene.shard_count, version)
    return replace(saved, version=version)


def get_activity_uncached(activity_id: str) -> Activity:
    """An activity read straight from the table (admin paths must not act on a stale copy)."""
    item = _get_item(_activity_pk(activity_id), "meta")
    if item is None:
        raise ActivityNotFound(f"activity {activity_id} is not configured", activity_id=activity_id)
    return _activity_from_item(item)


def put_switch(name: str, value: dict[str, Any]) -> dict[str, Any]:
    """Set a degradation switch (last write wins: a switch is a command, not a document)."""
    item = ConfigItem(SWITCH_PK, name, body=json.dumps(value, sort_keys=True), updated_at_ms=clock.now_ms())
    with_retries(lambda: item.save(add_version_condition=False))
    invalidate()
    return value
