"""Configuration edits refused because orders already won depend on what they would change. Pure.

An order's identity and meaning come from its scene's award type (the unit of its cap and its stock/budget) and
from the child its `open_time_ms` falls in (its key namespace, where its wallet is found). Edits that would change
either under orders a grant or its retry may still name are refused here, before anything is written.
"""

from __future__ import annotations

from chalicelib.errors import AwardTypeImmutable, ChildWindowMoved, StartedChildRemoved
from chalicelib.rewards.config import Activity, Scene


def check_award_type_kept(previous: Scene | None, scene: Scene) -> None:
    """Refuse a change of an existing scene's award type (`AwardTypeImmutable`). Pure.

    An order's per-order cap and its stock/budget counter are the scene's; both are in the unit of the award
    type (fen or pieces). Orders still decided under the former terms would be bounded by a cap and drawn from a
    counter in the other unit, so the award type is fixed when the scene is created (template changes, same unit,
    keep the terms history).
    """
    if previous is not None and previous.award_type != scene.award_type:
        raise AwardTypeImmutable(
            f"scene {scene.scene_id} grants {previous.award_type}; its award_type cannot change to "
            f"{scene.award_type}: create a new scene",
            field="award_type", current=previous.award_type, requested=scene.award_type,
        )


def _child_id_at(activity: Activity, at_ms: int) -> str | None:
    return next((c.sub_activity_id for c in activity.children if c.covers(at_ms)), None)


def check_children_change(previous: Activity | None, activity: Activity, now_ms: int, *, behind_ms: int,
                          ahead_ms: int) -> None:
    """Refuse an activity change that could turn a grant's retry into a second order. Pure.

    - a child whose window has started (at or before `now_ms`) may hold orders and wallets, found only through
      the activity's list: dropping or renaming it is `StartedChildRemoved`;
    - an instant in [now - behind, now + ahead] (open times a grant or its retry may still name) must keep its
      child: otherwise `ChildWindowMoved`. Boundaries further ahead move freely; earlier ones are history.
    """
    if previous is None:
        return
    kept = {c.sub_activity_id for c in activity.children}
    for child in previous.children:
        if child.starts_at_ms <= now_ms and child.sub_activity_id not in kept:
            raise StartedChildRemoved(
                f"child activity {child.sub_activity_id} started at {child.starts_at_ms} and may hold orders and "
                "wallets: it cannot be removed or renamed",
                sub_activity_id=child.sub_activity_id, starts_at_ms=child.starts_at_ms,
            )
    low, high = now_ms - behind_ms, now_ms + ahead_ms
    # Both mappings are constant between window edges: compare them at the low end and at every edge inside.
    edges = {e for c in (*previous.children, *activity.children) for e in (c.starts_at_ms, c.ends_at_ms)}
    for at_ms in sorted({low, *(e for e in edges if low < e <= high)}):
        before, after = _child_id_at(previous, at_ms), _child_id_at(activity, at_ms)
        if before != after:
            named = before or after
            raise ChildWindowMoved(
                f"open time {at_ms} maps to child activity {before or 'none'} and would map to {after or 'none'}; "
                f"windows may change only outside [{low}, {high}] (grants and their retries still name it)",
                sub_activity_id=named, at_ms=at_ms, locked_from_ms=low, locked_until_ms=high,
            )
