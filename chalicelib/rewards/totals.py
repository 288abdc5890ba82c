"""Reads of the sharded figures: a scene's stock and an activity's total distributed."""

from __future__ import annotations

from typing import Any

from chalicelib.rewards import config_store, counters, ids
from chalicelib.rewards.config import Child, Scene
from chalicelib.settings import settings


def stock(scene: Scene, ns: str, child: Child) -> dict[str, Any]:
    """A scene's stock or budget in one child: total, consumed, remaining (summed over shards)."""
    body: dict[str, Any] = {"activity_id": scene.activity_id, "scene_id": scene.scene_id,
                            "sub_activity_id": child.sub_activity_id, "stock_control": scene.stock_control,
                            "asset": scene.asset}
    if not scene.stock_control:
        return body
    summary = counters.summarise(ids.stock_counter_id(ns, scene.scene_id), scene.total)
    body.update(total=summary.total, consumed=summary.consumed, remaining=summary.remaining,
                remaining_ratio=round(summary.remaining / summary.total, 4) if summary.total else 0.0)
    return body


def distributed(ns: str, asset: str) -> tuple[int, int]:
    """(amount, count) credited in one child for one asset, summed over the counter's shards."""
    return counters.sum_shards(ids.distributed_counter_id(ns, asset), settings().distributed_shards)


def activity_totals(activity_id: str) -> dict[str, Any]:
    """Total distributed per child activity and asset (each child separately: test money is not formal money)."""
    activity = config_store.get_activity_uncached(activity_id)
    assets = sorted({scene.asset for scene in config_store.list_scenes(activity_id)})
    children = []
    for child in activity.children:
        ns = activity.ns(child)
        per_asset = {}
        for asset in assets:
            amount, count = distributed(ns, asset)
            per_asset[asset] = {"amount": amount, "rewards": count}
        children.append({"sub_activity_id": child.sub_activity_id, "purpose": child.purpose,
                         "distributed": per_asset})
    return {"activity_id": activity_id, "children": children}
