"""Play settlement and hostile callers, as actors of a run.

- `gift`: a viewer sends gifts in the play app's room (the model records what the platform appended);
- `hostile_grant`: a caller of the public grant API who names the platform's internal bill activity, either
  pre-empting the developer's bill with its guessable order id (`play-app-{app}_bill_{YYYYMMDD}_cash_1`, 1 fen)
  or granting itself an unbudgeted fortune there. Any 2xx is `unbudgeted`; the public API must refuse (4xx);
- `settle_play`: at the end, the bills job closes the day and the credit is drained; the developer's wallet
  must hold what the model computed from the gifts (`bill_mismatch`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.simulation import play_model

if TYPE_CHECKING:
    from tests.simulation.sim import Sim


def gift(sim: Sim) -> set[str]:
    sim.stats["gifts"] += sim.play.gifts(sim.rng)
    return set()


def hostile_grant(sim: Sim) -> set[str]:
    play, rng, now = sim.play, sim.rng, sim.world.now
    activity = rng.choice(play.internal_activities())
    sim.stats["hostile_grants"] += 1
    if rng.random() < 0.5:
        # the developer's bill of today, guessed and placed first with 1 fen
        what = "pre-empted the developer's bill"
        body = {"activity_id": activity, "scene_id": "bill", "act_id": play.wallet_act_id,
                "rain_id": play_model.day_of(now).replace("-", ""), "award_type": "cash", "stage": "1", "amount": 1,
                "open_time_ms": now}
    else:
        what = "granted itself money in the bill activity"
        body = {"activity_id": activity, "scene_id": "bill", "act_id": f"mallory{sim.plan.activity_id}",
                "rain_id": f"h{sim.stats['hostile_grants']}", "award_type": "cash", "stage": "1",
                "amount": rng.choice((10**6, 10**9, 10**12)), "open_time_ms": now}
    status, answer = sim.world.grant(body)
    code = answer.get("code") if isinstance(answer, dict) else None
    if status in (200, 202):
        sim.model.violate("unbudgeted", f"a public grant in {activity} {what}: {body['act_id']} "
                                        f"{body['amount']} fen answered {status} (order {answer.get('order_id')})")
    elif status >= 500:
        sim.model.violate("answer_mismatches", f"hostile grant in {activity}: answered {status} {code}")
    return set()


def settle_play(sim: Sim) -> None:
    """Close every day's bill (the bills job, twice: closing, then placing any pending credit), drain the credit
    queue, and compare the developer's wallet and each closed bill with the model."""
    play = sim.play
    days = play.model.days()
    if not days:
        return
    sim.world.now = max(sim.world.now, play_model.closes_at_ms(days[-1]) + 60_000)
    for _ in range(2):
        play.close_bills()
        sim.drain()
    credited, views = play.credited()
    sim.stats["bills_checked"] += len(days)
    for day, view in zip(days, views, strict=True):
        share = play.model.share(day)
        if not view.get("closed") or view.get("developer_share") != share:
            sim.model.violate("bill_mismatch", f"bill {play.app.app_id}/{day}: model share {share}, settlement "
                                              f"{ {k: view.get(k) for k in ('closed', 'developer_share', 'credit')} }")
    expected = play.model.credited_fen()
    if credited != expected:
        sim.model.violate("bill_mismatch", f"developer of play app {play.app.app_id}: wallet holds {credited} fen, "
                                           f"the model's bills credit {expected} fen")
