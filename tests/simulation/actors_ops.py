"""Operations as actors: reconciler outages, children opened long before the run, late credits.

- `reconciler_outages`: the reconciliation schedule does not run for 3.5-5 simulated hours of the run (a broken
  deploy, a throttled account); afterwards it must catch up on everything (item 10: the dead-lease sweep looks
  back 3 hours only: leases of the outage are never returned);
- `ancient_children`: the first child was opened 60 days before the run; a pass over one of the run's hours must
  finish within `PASS_INVOCATIONS` admin invocations (item 7: the first stock check catches up over every hour
  since the child opened);
- `late_credits`: some credit messages are delivered 2.5-3.5 hours late (after their hour's last pass), and such a
  delivery's batch often dies before its tally; the end of the run relies on the reconciliation *schedule* alone,
  hour after hour, as production does — no operator re-runs every hour (item 6: nothing brings the hour back).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.simulation.model import HOUR_MS, MINUTE_MS

if TYPE_CHECKING:
    from tests.simulation.sim import Sim

ANCIENT_DAYS = 60
PASS_INVOCATIONS = 60   # admin invocations one hour's pass may take (a 6-hour run's hour is small)
LATE_P = 0.25           # of a new credit message being delivered late (2.5-3.5 hours: after its hour's pass 2)
LATE_TALLY_CRASH_P = 0.5


def outage(sim: Sim) -> tuple[int, int] | None:
    """The span the reconciliation schedule is down, if any."""
    if not sim.flags["reconciler_outages"]:
        return None
    start = sim.world.now + sim.rng.randint(30, 90) * MINUTE_MS
    return start, start + sim.rng.randint(210, 300) * MINUTE_MS


def reconciler_down(sim: Sim) -> bool:
    return sim.outage is not None and sim.outage[0] <= sim.world.now < sim.outage[1]


def first_child_start(start_ms: int, ancient: bool) -> int:
    return start_ms - ANCIENT_DAYS * 24 * HOUR_MS if ancient else start_ms


def plan_late(sim: Sim, message: object) -> None:
    """A new credit message: sometimes held back until well after its hour's last pass."""
    if sim.flags["late_credits"] and sim.rng.random() < LATE_P:
        message.not_before_ms = sim.world.now + sim.rng.randint(150, 210) * MINUTE_MS  # type: ignore[attr-defined]


def deliverable(sim: Sim) -> list:
    return [m for m in sim.world.queue.messages if getattr(m, "not_before_ms", 0) <= sim.world.now]


def late_in(batch: list) -> bool:
    return any(getattr(m, "not_before_ms", 0) for m in batch)


def settle_by_schedule(sim: Sim) -> None:
    """The hours after the run as production lives them: the schedule every 20 minutes, deliveries between."""
    for _ in range(4 * 3):
        sim.world.now += 20 * MINUTE_MS
        late = [m for m in deliverable(sim) if getattr(m, "not_before_ms", 0)]
        for start in range(0, len(late), 10):  # the late ones as they come due, their batch dying half the time
            batch = late[start:start + 10]
            crash = sim.rng.random() < LATE_TALLY_CRASH_P
            failed, _ = sim._late_delivery(batch) if crash else sim.world.deliver(batch)
            sim._after_delivery(batch, failed)
        scheduled(sim)
        sim.drain()


def scheduled(sim: Sim) -> None:
    """One invocation of the reconciliation schedule with its full time. One that fails as a whole (its deadline
    is real time, the runner's budget the simulation's ticking clock) is retried by the next."""
    from chalicelib.errors import RewardgateError

    try:
        sim.world.reconcile_scheduled()
    except RewardgateError as error:
        sim.stats[f"failed_schedules_{error.code}"] += 1
