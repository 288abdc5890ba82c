"""Per-instance clocks (flag `skewed_clocks`).

Every simulated Lambda instance has its own clock skew: each action runs on one of `INSTANCES` instances, whose
clock reads the simulated time plus its skew, up to the tolerance the code states (`chalicelib.reconcile.findings.
CLOCK_SKEW_MS` once it defines one; until then `MAX_SKEW_MS`, 5 s: instances synchronise with the Amazon Time
Sync Service, and reservations' write margin is 15 s, `WRITE_MARGIN_MS`).

And a delay between reading the clock and committing (`boundary_race`): near an hour's end, grant A of a
dedicated scene reads its clock just before the hour, and its commit is held (the transaction waits at the storage
boundary) while grant B of the next hour reads the clock and commits on the same scene; then A commits. The
scene then stays idle until the next race, so a pass over A's hour sees a counter last touched "in" that hour
(item 5: the shard's `updated_at_ms` moved back into the earlier hour, a false `stock_drift`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from tests.simulation.model import HOUR_MS, MINUTE_MS

if TYPE_CHECKING:
    from tests.simulation.sim import Sim

INSTANCES = 3
MAX_SKEW_MS = 5_000
BOUNDARY_SCENE = "boundary"


def max_skew_ms() -> int:
    """The skew the code tolerates: reconciliation's `CLOCK_SKEW_MS` where it states one, else `MAX_SKEW_MS`."""
    from chalicelib.reconcile import findings

    return int(getattr(findings, "CLOCK_SKEW_MS", MAX_SKEW_MS))


def instance_skews(sim: Sim) -> list[int]:
    """Each instance's clock skew (ms), drawn once per run."""
    bound = max_skew_ms()
    return [sim.rng.randint(-bound, bound) for _ in range(INSTANCES)]


def pick_instance(sim: Sim) -> None:
    """The next action runs on one of the instances: the code's clock reads with its skew."""
    if len(sim.skews) > 1:
        sim.world.skew_ms = sim.rng.choice(sim.skews)


def boundary_race(sim: Sim) -> set[str]:
    world, rng = sim.world, sim.rng
    boundary = (world.now // HOUR_MS + 1) * HOUR_MS
    if boundary - world.now > 30 * MINUTE_MS or sim.plan.child_at(boundary) != sim.plan.child_at(world.now):
        return sim.grant()  # not near an hour's end (or a child's): an ordinary grant
    world.skew_ms = 0
    world.now = boundary - rng.randint(50, 400)
    first = sim._new_reward(BOUNDARY_SCENE)
    first.won_at_ms = world.now
    answers: list = [None]

    def slow() -> None:
        answers[0] = world.grant_direct(sim._body(first))

    with world.storage.holding() as hold:
        thread = threading.Thread(target=slow)
        thread.start()
        while not hold.reached.wait(0.02) and thread.is_alive():
            pass  # until A waits at its commit (or has finished without one: refused)
        reached = hold.reached.is_set()
        world.now = boundary + rng.randint(50, 400)
        second = sim._new_reward(BOUNDARY_SCENE)
        second.won_at_ms = world.now
        status, body = world.grant(sim._body(second))
        hold.release.set()
        thread.join(60)
    sim.stats["grants"] += 2
    sim.stats["boundary_races"] += reached
    sim.model.record_grant(second, False, second.amount, world.now, status, body)
    status, body = answers[0] if answers[0] is not None else (None, None)
    sim.model.record_grant(first, False, first.amount, world.now, status, body)
    return {first.user, second.user}
