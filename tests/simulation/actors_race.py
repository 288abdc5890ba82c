"""Races: two calls at the same moment, each in its own thread (through the domain functions the routes call)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.simulation import probes

if TYPE_CHECKING:
    from tests.simulation.sim import Sim


def race(sim: Sim) -> set[str]:
    """Two calls at the same moment: one grant body twice, one withdrawal twice, two withdrawals of one
    user that together exceed the balance, or one credit message in two worker invocations. No crash is
    armed and the provider pays (its answers then take no random draw: the run stays replayable)."""
    kind = sim.rng.choice(("grant", "withdrawal", "withdrawals", "delivery"))
    healthy, sim.provider.healthy = sim.provider.healthy, True
    asynchronous, sim.provider.asynchronous = sim.provider.asynchronous, False
    try:
        return {"grant": _race_grant, "withdrawal": _race_withdrawal, "withdrawals": _race_withdrawals,
                "delivery": _race_delivery}[kind](sim)
    finally:
        sim.provider.healthy, sim.provider.asynchronous = healthy, asynchronous
        sim.stats[f"race_{kind}"] += 1


def _race_grant(sim: Sim) -> set[str]:
    reward = sim._new_reward()
    body = sim._body(reward)
    answers = sim.world.race([lambda: sim.world.grant_direct(body)] * 2)
    sim.stats["grants"] += 2
    for status, answer in sorted(answers, key=lambda a: a[0] != 202):
        sim.model.record_grant(reward, False, reward.amount, sim.world.now, status, answer)
    return {reward.user}


def _race_withdrawal(sim: Sim, different: bool = False) -> set[str]:
    chosen = sim._withdrawer()
    if chosen is None:
        return set()
    user, child = chosen
    available = sim.model.available(user, child)
    amount = max(1, available * sim.rng.randint(40, 90) // 100)
    # request ids of their own (never chosen again): which of two racers wins varies from run to run, and
    # later choices must not depend on it, or a seed would not replay
    sim.stats["races"] += 1
    first = f"race{sim.stats['races']}a-{user}"
    second = f"race{sim.stats['races']}b-{user}" if different else first
    calls = [lambda: sim.world.withdraw_direct(user, first, amount),
             lambda: sim.world.withdraw_direct(user, second, amount)]
    answers = sim.world.race(calls)
    sim.stats["withdrawals"] += 2
    rank = {202: 0, 200: 1, 502: 1}  # record the less settled first: a repeat may only move forward
    ordered = sorted(zip((first, second), answers, strict=True), key=lambda x: rank.get(x[1][0], 2))
    for request_id, (status, body) in ordered:
        # provider_healthy=False: the call that finds the other in flight may answer PAYOUT_PENDING
        sim.model.record_withdrawal(user, request_id, amount, sim.world.server_now, False, status, body,
                                     racing=different)
    probes.resolve_withdrawals(sim.world, sim.model, user)  # the outcome as it settled, whoever won
    return {user}


def _race_withdrawals(sim: Sim) -> set[str]:
    return _race_withdrawal(sim, different=True)


def _race_delivery(sim: Sim) -> set[str]:
    queue = sim.world.queue
    if not queue.messages:
        return set()
    message = sim.rng.choice(queue.messages)
    copy = type(message)(message_id=f"{message.message_id}-copy", body=message.body)
    outcomes = sim.world.race([lambda: sim.world.deliver([message]), lambda: sim.world.deliver([copy])])
    done = message.message_id not in outcomes[0][0] or copy.message_id not in outcomes[1][0]
    sim._after_delivery([message], set() if done else {message.message_id})
    return {sim._user_of(message.body)}
