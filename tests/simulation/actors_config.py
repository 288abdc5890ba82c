"""Configuration changes as an actor (flag `config_changes`): an operator edits scenes and switches through the
admin API while grants and their retries are in flight.

Each change is one of: a scene's per-order cap (lowered or raised), its `shard_count` (its stock re-spread), its
`reconcile` flag (item 4: orders of an unreconciled scene are never re-driven), the scene's grants switch (off
for a while, then on), a coupon scene's `template_id` (item 3: an identical retry after the change is a second
order). The model learns each change (caps and switches decide answers; the rest must change none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.simulation.sim import Sim

CHANGES = {"cap": 2, "shards": 2, "reconcile": 2, "switch": 2, "template": 3}  # change -> weight


def scene_bodies(sim: Sim) -> dict[str, dict]:
    """The scenes' current configuration, as the admin API takes it (kept by the simulation)."""
    if not hasattr(sim, "_scene_bodies"):
        sim._scene_bodies = {s.scene_id: sim.world.scene_body(s) for s in sim.plan.scenes}  # type: ignore[attr-defined]
    return sim._scene_bodies  # type: ignore[attr-defined]


def change(sim: Sim) -> set[str]:
    rng, model = sim.rng, sim.model
    bodies = scene_bodies(sim)
    kinds = {c: w for c, w in CHANGES.items() if c != "template" or sim.world.coupon_scenes()}
    kind = rng.choices(list(kinds), weights=list(kinds.values()))[0]
    scene_id = rng.choice(sorted(sim.world.coupon_scenes()) if kind == "template" else sorted(bodies))
    body = dict(bodies[scene_id])
    if kind == "switch":
        on = scene_id in model.switched_off
        status, answer = sim.world.set_scene_switch(scene_id, on)
        assert status == 200, answer
        (model.switched_off.discard if on else model.switched_off.add)(scene_id)
        sim.stats[f"config_{kind}"] += 1
        return set()
    if kind == "cap":
        body["order_cap"] = rng.choice((300, 600, 1000, 1000))
    elif kind == "shards":
        body["shard_count"] = rng.randint(1, 6)
    elif kind == "reconcile":
        body["reconcile"] = not body.get("reconcile", True)
    else:
        body["template_id"] = f"t{rng.randint(1, 99)}"
    status, answer = sim.world.put_scene(scene_id, body)
    if status != 200:  # e.g. a total below what is consumed: refused, nothing changed
        sim.stats["config_refused"] += 1
        return set()
    bodies[scene_id] = body
    model.caps[scene_id] = body["order_cap"]
    sim.stats[f"config_{kind}"] += 1
    return set()
