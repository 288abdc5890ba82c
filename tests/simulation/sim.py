"""One seeded run of the whole money path: actors, faults and the clock chosen by `random.Random(seed)`.

Actors: upstream callers granting (single and batch), retrying the same body and sending a different body for
the same order id; users withdrawing (request ids shared across users, repeats across child windows); the
payout provider (`provider.SimProvider`); the credit worker with 1-3x delivery, reordering and a crash at every
`faults.point`; SQS send failures; the rewards sweeper and the reconciler at random moments. The activity has
three children whose boundaries the clock crosses while retries are in flight. After every step the probes
check the invariants against the model; at the end the run settles (provider healthy, queues drained, sweeps
and reconciliation), checks everything once more, seeds inconsistencies on purpose and checks that
reconciliation reports exactly those.

Issue 18 widened it, each behind its flag in `flags.py` while the defect it finds is open: indeterminate outcomes
at every DynamoDB write (`storage_faults.py`), an asynchronous payout provider (`provider.py`), a play app whose
gifts become a daily bill credited to its developer, and hostile grant callers (`actors_play.py`), an operator
editing configuration (`actors_config.py`), per-instance clocks and delayed commits (`actors_clock.py`), and
operations — reconciler outages, a child opened long before the run, late credits (`actors_ops.py`).
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from tests.simulation import actors_clock, actors_config, actors_ops, actors_play, actors_race, probes
from tests.simulation.flags import (
    FAULTED,
    FLAGS,
    GATED,
    MODE_WEIGHTS,
    STORAGE_FAULT_P,
    STORAGE_FAULT_P_BY_ACTION,
    Result,
)
from tests.simulation.model import HOUR_MS, MINUTE_MS, NOT_DEBITED, ChildWindow, Model, Plan, Reward, SceneSpec
from tests.simulation.play_world import PlayWorld
from tests.simulation.provider import SimProvider
from tests.simulation.world import World, fault_points, provider_contract

SPAN_MS = 6 * HOUR_MS          # simulated time a run covers, whatever its step count
BASE_MS = int(datetime(2031, 1, 6, tzinfo=UTC).timestamp() * 1000)
USERS = ("alice", "bob", "carol", "dave")  # each run's users are these names with the run's tag
_runs = itertools.count()
_seeds_run: set[int] = set()

ACTIONS = {  # action -> weight
    "grant": 22, "grant_batch": 8, "retry_grant": 10, "conflicting_grant": 4, "deliver": 22, "withdraw": 14,
    "repeat_withdrawal": 5, "read_withdrawals": 3, "sweep": 4, "reconcile": 2, "provider_health": 4,
    "sqs_failure": 3, "race": 4, "gift": 3, "hostile_grant": 3, "config": 3, "boundary_race": 3,
}
FAMILY = {"grant": "grant", "grant_batch": "grant", "retry_grant": "grant", "conflicting_grant": "grant",
          "deliver": "credit", "withdraw": "withdrawal", "repeat_withdrawal": "withdrawal", "sweep": "withdrawal"}
CRASH_P = 0.25
UNFIRED_CRASH_P = 1.0  # a point of the action's family that never fired is armed until it fires


def make_plan(rng: random.Random, start_ms: int, tag: str, coupons: bool = False, boundary: bool = False,
              ancient: bool = False) -> Plan:
    """An activity with three children (2 h, 2 h, then the formal one) and a stocked and an open scene."""
    children = (
        ChildWindow("test", "internal_test", actors_ops.first_child_start(start_ms, ancient), start_ms + 2 * HOUR_MS),
        ChildWindow("gray", "gray_rehearsal", start_ms + 2 * HOUR_MS, start_ms + 4 * HOUR_MS),
        ChildWindow("formal", "formal", start_ms + 4 * HOUR_MS, start_ms + 48 * HOUR_MS),
    )
    scenes = (SceneSpec("stocked", rng.randint(4_000, 12_000), True, rng.randint(1, 4), 1000),
              SceneSpec("open", 0, False, 1, 1000))
    if coupons:  # a coupon scene (its rewards credit `coupon:{template}` wallets, never withdrawn)
        scenes += (SceneSpec("coupon", rng.randint(3_000, 8_000), True, rng.randint(1, 3), 1000, "coupon", "t0"),)
    if boundary:  # one shard, granted only by the boundary races (idle between them)
        scenes += (SceneSpec(actors_clock.BOUNDARY_SCENE, 100_000, True, 1, 1000),)
    return Plan(f"sim{tag}", children, scenes, tuple(f"{name}{tag}" for name in USERS))


class Sim:
    """One run: the actors, the world, the model."""

    def __init__(self, seed: int, steps: int, flags: dict[str, bool] | None = None) -> None:
        self.seed, self.steps = seed, steps
        self.flags = {**FLAGS, **(flags or {})}
        self.rng = random.Random(seed)
        run = next(_runs)
        # each run in a process gets its own week (same weekday and hour alignment, so a replay is the same run);
        # ids come from the seed alone (keys are hashed into shards and buckets, which steer the run), with the
        # run number added only when the seed already ran in this process (that repeat is not an exact replay)
        start = BASE_MS + run * 7 * 24 * HOUR_MS
        tag = f"{seed}" if seed not in _seeds_run else f"{seed}r{run}"
        _seeds_run.add(seed)
        self.plan = make_plan(self.rng, start, tag, coupons=self.flags["config_changes"],
                              boundary=self.flags["skewed_clocks"], ancient=self.flags["ancient_children"])
        self.provider = SimProvider(random.Random(self.rng.random()), strict=provider_contract() == "payout_id")
        self.provider.asynchronous = self.flags["async_payouts"]
        self.world = World(self.plan, start + 5 * MINUTE_MS, self.provider)
        self.world.storage.read_timeouts = self.flags["read_timeout_errors"]
        self.model = Model(self.plan)
        self.points = fault_points()
        self.fired: Counter = Counter()
        self.stats: Counter = Counter()
        self.first_ms = self.world.now
        self.skews = actors_clock.instance_skews(self) if self.flags["skewed_clocks"] else [0]
        self.outage = actors_ops.outage(self)
        self.actions = {name: weight for name, weight in ACTIONS.items() if self.flags.get(GATED.get(name, ""), True)}
        self.play: PlayWorld | None = None

    # --- helpers -------------------------------------------------------------------------

    def _crashable(self, family: str | None, action: Callable[[], object]) -> object:
        """Run an action, sometimes with one crash point of its family (or of no known family) armed."""
        from chalicelib import faults

        known = {"grant", "credit", "withdrawal"}
        # a withdrawal credits the user's pending orders first: the credit points can fire inside it too
        families = {family, "credit"} if family == "withdrawal" else {family}
        candidates = [p for p in self.points if p.split(".")[0] in families or p.split(".")[0] not in known]
        if family is None or not candidates:
            return action()
        # points of the action's own family never fired yet go first, and more often: every point fires in a run
        unfired = [p for p in candidates if not self.fired[p] and p.split(".")[0] == family]
        if self.rng.random() >= (UNFIRED_CRASH_P if unfired else CRASH_P):
            return action()
        least = min(self.fired[p] for p in candidates)
        point = self.rng.choice(unfired or [p for p in candidates if self.fired[p] == least])
        with faults.armed(point):
            try:
                outcome = action()
            except faults.InjectedCrash:
                self._crashed(point)
                return None
            if faults._armed.get(point) == 0:  # fired inside, and the world absorbed it (a worker dying)
                self._crashed(point)
        return outcome

    def _storage_faulted(self, action: str, run: Callable[[], set[str]]) -> set[str]:
        """Run an action, sometimes with one of its DynamoDB writes made indeterminate (`indeterminate_writes`)."""
        self.world.storage.fired_now.clear()
        if not self.flags["indeterminate_writes"] or action not in FAULTED or self.rng.random() >= (
                STORAGE_FAULT_P_BY_ACTION.get(action, STORAGE_FAULT_P)):
            return run()
        from botocore.exceptions import BotoCoreError, ClientError

        from chalicelib.errors import RewardgateError
        nth = self.rng.randint(1, 8)
        mode = self.rng.choices(list(MODE_WEIGHTS), weights=list(MODE_WEIGHTS.values()))[0]
        with self.world.storage.armed(nth, mode):
            try:
                return run()
            except (RewardgateError, BotoCoreError, ClientError):
                if action not in ("sweep", "reconcile"):  # requests answer 503; workers report their failures
                    raise
                self.stats["failed_invocations"] += 1  # a scheduled invocation failed as a whole: the next runs
                return set(self.plan.users)
            finally:
                self.stats["storage_faults"] += sum(self.world.storage.fired.values()) - self.stats["storage_faults"]

    def _lost_answers(self) -> bool:
        """Whether the running action had a write land with its answer lost."""
        return any(not key.endswith("throttled_sticky") for key in self.world.storage.fired_now)

    def _crashed(self, point: str) -> None:
        self.fired[point] += 1
        self.stats["crashes"] += 1

    def _eligible(self, reward: Reward) -> bool:
        """Whether a caller may (re)send this reward now."""
        if reward.refused is not None:
            return False
        return self.flags["cross_child_grant_retries"] or self.model.expected_child(reward) == self.plan.child_at(
            self.world.now)

    def _body(self, reward: Reward, amount: int | None = None) -> dict:
        return self.world.grant_body(reward.user, reward.scene_id, reward.rain_id, reward.stage,
                                     amount or reward.amount, reward.won_at_ms)

    def _new_reward(self, scene_id: str | None = None) -> Reward:
        now = self.world.now
        won = now - (self.rng.randint(0, 10 * MINUTE_MS) if self.rng.random() < 0.4 else 0)
        if self.flags["cross_child_grant_retries"] and self.rng.random() < 0.03:
            # a win older than the retry horizon, or in the future: refused (open_time_out_of_range)
            won = self.rng.choice((now - self.plan.retry_horizon_ms - self.rng.randint(1, 60) * MINUTE_MS,
                                   now + self.rng.randint(6, 60) * MINUTE_MS))
        child = self.plan.child_at(now)
        if not self.flags["cross_child_grant_retries"] and child is not None:
            won = max(won, next(c.starts_at_ms for c in self.plan.children if c.sub_activity_id == child))
        scenes = [s.scene_id for s in self.plan.scenes if s.scene_id != actors_clock.BOUNDARY_SCENE]
        return self.model.new_reward(self.rng.choice(self.plan.users), scene_id or self.rng.choice(scenes),
                                     self.rng.randint(1, 1000), won)

    # --- actions -------------------------------------------------------------------------

    def grant(self) -> set[str]:
        reward = self._new_reward()
        self._grant_one(reward, conflicting=False)
        return {reward.user}

    def retry_grant(self) -> set[str]:
        return self._grant_again([r for r in self.model.rewards if r.attempts and self._eligible(r)], False)

    def conflicting_grant(self) -> set[str]:
        return self._grant_again([r for r in self.model.rewards if r.placements and self._eligible(r)], True)

    def _grant_again(self, candidates: list[Reward], conflicting: bool) -> set[str]:
        """A reward already tried, granted again (same body, or a different one for its order id)."""
        if not candidates:
            return self.grant()
        reward = self.rng.choice(candidates)
        self._grant_one(reward, conflicting=conflicting)
        return {reward.user}

    def _grant_one(self, reward: Reward, conflicting: bool) -> None:
        amount = reward.amount % 1000 + 1 if conflicting else reward.amount
        self.stats["grants"] += 1
        answer = self._crashable("grant", lambda: self.world.grant(self._body(reward, amount)))
        status, body = answer if answer is not None else (None, None)
        if status == 200 and self._lost_answers():
            # its first answer was lost and the retry met the order it had itself written: "existing" is all a
            # put-if-absent can tell (what the caller sees on AWS too, unless a transaction token answered it)
            reward.attempts += 1
        self.model.record_grant(reward, conflicting, amount, self.world.now, status, body)

    def grant_batch(self) -> set[str]:
        items: list[tuple[Reward, bool, int]] = []
        for _ in range(self.rng.randint(3 if self.flags["indeterminate_writes"] else 1, 6)):
            retry = [r for r in self.model.rewards if r.attempts and self._eligible(r)]
            if retry and self.rng.random() < 0.3:
                reward = self.rng.choice(retry)
                conflicting = bool(reward.placements) and self.rng.random() < 0.2
            else:
                reward, conflicting = self._new_reward(), False
            if any(r is reward for r, _, _ in items):
                continue
            items.append((reward, conflicting, reward.amount % 1000 + 1 if conflicting else reward.amount))
        self.stats["grants"] += len(items)
        answer = self._crashable("grant", lambda: self.world.grant_batch(
            [self._body(r, amount) for r, _, amount in items]))
        results: list[tuple[int | None, dict | None]] = [(None, None)] * len(items)
        if answer is not None:
            status, body = answer
            if status == 503 and body.get("code") == "storage_unavailable":
                pass  # retryable as a whole: every item's outcome unknown (storage decides)
            elif status != 200:
                self.model.violate("answer_mismatches", f"batch grant answered {status} {body}")
            else:
                results = [(r["status"], r["body"]) for r in sorted(body["results"], key=lambda r: r["index"])]
        for (reward, conflicting, amount), (status, body) in zip(items, results, strict=True):
            if status == 200 and self._lost_answers():
                reward.attempts += 1  # its first answer may have been lost (see _grant_one)
            self.model.record_grant(reward, conflicting, amount, self.world.now, status, body)
        return {r.user for r, _, _ in items}

    def deliver(self) -> set[str]:
        queue = self.world.queue
        if not queue.messages:
            return set()
        ready = actors_ops.deliverable(self)
        if not ready:
            return set()
        batch = self.rng.sample(ready, self.rng.randint(1, min(10, len(ready))))
        if actors_ops.late_in(batch) and self.rng.random() < actors_ops.LATE_TALLY_CRASH_P:
            outcome = self._late_delivery(batch)
        else:
            outcome = self._crashable("credit", lambda: self.world.deliver(batch))
        failed = outcome[0] if outcome is not None else {m.message_id for m in batch}
        self._after_delivery(batch, failed)
        return {self._user_of(m.body) for m in batch}

    def _late_delivery(self, batch: list) -> tuple[set[str], bool] | None:
        """A late delivery whose batch dies before its tally (the credits land, the tally never does)."""
        from chalicelib import faults

        with faults.armed("credit.before_tally"):
            outcome = self.world.deliver(batch)
            if faults._armed.get("credit.before_tally") == 0:
                self._crashed("credit.before_tally")
                self.stats["late_tally_crashes"] += 1
        return outcome

    def _after_delivery(self, batch: list, failed: set[str]) -> None:
        queue = self.world.queue
        for message in batch:
            if message.message_id in failed:
                if message.deliveries >= 8:  # maxReceiveCount: to the DLQ (reconciliation re-drives the order)
                    queue.messages.remove(message)
                    self.stats["dead_letters"] += 1
                continue
            self.stats["credit_deliveries"] += 1
            if message.extra_deliveries > 0:
                message.extra_deliveries -= 1
            else:
                queue.messages.remove(message)

    @staticmethod
    def _user_of(body: str) -> str:
        import json

        return json.loads(body).get("act_id", "")

    def _withdrawer(self) -> tuple[str, str] | None:
        """A user and the child open now, with what the model knows of them brought up to date (None: no child)."""
        user = self.rng.choice(self.plan.users)
        child = self.plan.wallet_child_at(self.world.server_now)  # the wallet the server's clock picks
        if child is None:
            return None
        probes.resolve(self.world, self.model, [r for r in self.model.rewards if r.user == user])
        probes.resolve_withdrawals(self.world, self.model, user)
        return user, child

    def withdraw(self, repeat: bool = False) -> set[str]:
        chosen = self._withdrawer()
        if chosen is None:
            return set()
        user, child = chosen
        mine = [w for w in self.model.withdrawals.values() if w.user == user and w.status != NOT_DEBITED
                and (w.child == child or self.flags["cross_child_withdrawal_repeats"])]
        if repeat and mine:
            first = self.rng.choice(mine)
            request_id = first.request_id
            amount = first.amount if self.rng.random() < 0.85 else first.amount + 1
        else:
            available = self.model.available(user, child)
            amount = max(1, available * self.rng.randint(1, 130) // 100) if available > 0 else self.rng.randint(1, 50)
            request_id = self._request_id(user, child)
            first = self.model.withdrawals.get((user, request_id))
            if first is not None and first.status != NOT_DEBITED:
                amount = first.amount
        # sometimes the user presents reward tokens (their orders are credited first), now and then one of
        # another child's wallet (refused, nothing debited)
        tokens = self.model.tokens_of(user, child)
        tokens = self.rng.sample(tokens, min(3, len(tokens))) if self.rng.random() < 0.3 else []
        foreign = [t for c in self.plan.children if c.sub_activity_id != child
                   for t in self.model.tokens_of(user, c.sub_activity_id)]
        foreign = [self.rng.choice(foreign)] if foreign and self.rng.random() < 0.08 else []
        self.stats["withdrawals"] += 1
        healthy, processing = self.provider.healthy, self.provider.calls["processing"]
        answer = self._crashable("withdrawal", lambda: self.world.withdraw(user, request_id, amount,
                                                                            tokens + foreign))
        status, body = answer if answer is not None else (None, None)
        healthy = healthy and self.provider.calls["processing"] == processing  # PROCESSING: not paid yet
        self.model.record_withdrawal(user, request_id, amount, self.world.server_now, healthy, status, body,
                                     foreign_token=bool(foreign))
        return {user}

    def _request_id(self, user: str, child: str) -> str:
        shared = self.flags["shared_request_ids"]
        pool = 6 + len(self.model.withdrawals) // 3
        for _ in range(50):
            k = self.rng.randrange(pool)
            request_id = f"wd{k}" if shared else f"wd{k}-{user}"
            first = self.model.withdrawals.get((user, request_id))
            if first is None or first.status == NOT_DEBITED:
                return request_id
            if first.child == child or self.flags["cross_child_withdrawal_repeats"]:
                return request_id
        return f"wd{len(self.model.withdrawals)}x-{user}"

    def race(self) -> set[str]:
        return actors_race.race(self)

    def read_withdrawals(self) -> set[str]:
        probes.resolve_withdrawals(self.world, self.model)
        return set()

    def sweep(self) -> set[str]:
        self._crashable("withdrawal", self.world.sweep)
        probes.resolve_withdrawals(self.world, self.model)
        return set(self.plan.users)

    def reconcile(self) -> set[str]:
        if actors_ops.reconciler_down(self):
            self.stats["reconciler_down"] += 1
            return set()
        # the schedule's Lambda with little time left past its 20 s reserve: it runs a few steps, later ones resume
        timeout_s = 20 + self.rng.uniform(0.5, 3)
        if not self.flags["short_reconciler_invocations"]:
            timeout_s = 240
        from chalicelib.errors import RewardgateError

        try:
            runs = self.world.reconcile_scheduled(timeout_s=timeout_s)
        except RewardgateError as error:  # the invocation failed as a whole (its deadline is real time, the
            self.stats[f"failed_schedules_{error.code}"] += 1  # runner's budget the ticking clock): the next resumes
            return set(self.plan.users)
        for run in runs:
            if run["status"] == "done":
                status, body = self.world.call("GET", f"/v1/admin/reconciliations/{run['hour']}")
                assert status == 200, body
                probes.check_mid_run_reports(self.model, body["reports"], self.world.namespaces())
        self.stats["reconciliations"] += 1
        return set(self.plan.users)

    def provider_health(self) -> set[str]:
        self.provider.healthy = not self.provider.healthy if self.provider.healthy else self.rng.random() < 0.6
        return set()

    def sqs_failure(self) -> set[str]:
        if self.rng.random() < 0.5:
            self.world.queue.fail_next_sends = self.rng.randint(1, 2)
        else:
            self.world.queue.partial_next_send = True
        return set()

    # --- the run -------------------------------------------------------------------------

    def _plan_redeliveries(self) -> None:
        for message in self.world.queue.messages:
            if message.deliveries == 0 and not getattr(message, "planned", False):
                message.planned = True  # type: ignore[attr-defined]
                message.extra_deliveries = self.rng.choices((0, 1, 2), weights=(6, 3, 1))[0]
                actors_ops.plan_late(self, message)

    def step(self, index: int) -> None:
        self.model.step = index
        names, weights = zip(*self.actions.items(), strict=True)
        action = self.rng.choices(names, weights=weights)[0]
        starved = [name for name in names if not self.stats[f"action_{name}"]]
        if starved and index >= 10 and index % 5 == 0:  # every actor acts at least once, even in a short run
            action = starved[0]
        acts = {
            "grant": self.grant, "grant_batch": self.grant_batch, "retry_grant": self.retry_grant,
            "conflicting_grant": self.conflicting_grant, "deliver": self.deliver, "withdraw": self.withdraw,
            "repeat_withdrawal": lambda: self.withdraw(repeat=True), "read_withdrawals": self.read_withdrawals,
            "sweep": self.sweep, "reconcile": self.reconcile, "provider_health": self.provider_health,
            "sqs_failure": self.sqs_failure, "race": self.race,
            "gift": lambda: actors_play.gift(self), "hostile_grant": lambda: actors_play.hostile_grant(self),
            "config": lambda: actors_config.change(self),
            "boundary_race": lambda: actors_clock.boundary_race(self),
        }
        actors_clock.pick_instance(self)
        touched = self._storage_faulted(action, acts[action])
        self.stats[f"action_{action}"] += 1
        self._plan_redeliveries()
        money_out = action in ("withdraw", "repeat_withdrawal", "sweep", "reconcile", "read_withdrawals", "race")
        for user in sorted(touched & set(self.plan.users)):
            probes.check_user(self.world, self.model, user, withdrawals=money_out)
        if index % 25 == 24:
            probes.check_all(self.world, self.model)
        self.world.now += int(self.rng.expovariate(self.steps / SPAN_MS)) + 1000

    def drain(self) -> None:
        """Deliver everything in the queue (duplicates included), no crash."""
        for _ in range(10_000):
            queue = self.world.queue
            if not queue.messages:
                return
            batch = self.rng.sample(queue.messages, min(10, len(queue.messages)))
            failed, _ = self.world.deliver(batch)
            self._after_delivery(batch, failed)

    def reconcile_every_hour(self) -> list[dict]:
        reports = []
        hour = self.first_ms - self.first_ms % HOUR_MS
        limit = actors_ops.PASS_INVOCATIONS if self.flags["ancient_children"] else 1000
        while hour <= self.last_ms:
            found, invocations = self.world.reconcile_hour(hour, limit)
            self.stats["max_pass_invocations"] = max(self.stats["max_pass_invocations"], invocations)
            if self.world.errors:
                self.model.violate("answer_mismatches", self.world.errors.pop())
            elif found is None:
                when = datetime.fromtimestamp(hour / 1000, UTC)
                self.model.violate("recon_missed", f"the pass over hour {when:%Y-%m-%dT%H} did not finish in {limit} "
                                                   "invocations",
                                   key=("unfinished", hour))
            reports.extend(found or [])
            hour += HOUR_MS
        return reports

    def settle(self) -> None:
        """The end of the run: provider healthy, no more faults; sweeps, deliveries and reconciliation converge."""
        self.last_ms = self.world.now
        self.provider.healthy = True
        self.world.queue.fail_next_sends, self.world.queue.partial_next_send = 0, False
        # past the longest a payout is PROCESSING (45 min) plus the sweeper's longest re-query backoff (30 min)
        for _ in range(8):
            self.world.now += 15 * MINUTE_MS
            self.world.sweep()
            self.drain()
        if self.flags["late_credits"]:
            actors_ops.settle_by_schedule(self)  # production: the schedule alone, no operator re-running hours
        else:
            self.world.now = self.last_ms - self.last_ms % HOUR_MS + 3 * HOUR_MS
            if self.flags["indeterminate_writes"]:
                actors_ops.scheduled(self)  # the schedule's own work: dead reservations returned
            self.reconcile_every_hour()  # re-drives what no message carries any more; completes crashed tallies
        self.drain()
        self.world.sweep()
        self.drain()
        probes.resolve_withdrawals(self.world, self.model)
        probes.check_all(self.world, self.model, final=True)
        probes.check_settled(self.world, self.model)

    def seed_inconsistencies(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Break storage on purpose, in ways reconciliation must report: (what it must report, what it may also
        report about the same fault)."""
        seeded: list[tuple[str, str]] = []
        allowed: list[tuple[str, str]] = []
        credited = [(r.user, c, oid, r.scene_id) for r in self.model.rewards if r.scene_id in self.model.cash
                    for (c, oid) in r.placements]
        self.rng.shuffle(credited)
        wallets = list(dict.fromkeys((u, c) for u, c, _, _ in credited))
        if len(wallets) >= 2:
            (victim, victim_child), (other, other_child) = wallets[0], wallets[1]
            seeded.append(self.world.tamper_balance(victim, victim_child, 7))
            order_id, scene_id = next((oid, s) for u, c, oid, s in credited if (u, c) == (other, other_child))
            # An order is its own ledger credit: the old layout's "deleted ledger credit" is a deleted credited order.
            must, may = self.world.delete_credited_order(other, other_child, order_id, scene_id)
            seeded.extend(must)
            allowed.extend(may)
        if self.flags["provider_reconciliation"]:
            stray = self.provider.seed_stray_payout(self.rng.choice(self.plan.users), 123, self.last_ms - HOUR_MS)
            seeded.append(("payout_mismatch", stray.payout_id))
        return seeded, allowed

    def run(self, progress: Callable[[int], None] | None = None) -> Result:
        started = time.monotonic()
        try:
            self.world.configure()
            # The deploy: the reconciliation schedule's rate rule fires within its first period, before any
            # outage (30-90 min in); that first invocation records the reconciled-through watermark, so every hour
            # of the run is owed a last pass. (Invoked only by the `reconcile` action, the schedule could first run
            # hours after the first grant, and a fresh watermark skips hours it never owed: seed 20261204.)
            actors_ops.scheduled(self)
            self.play = PlayWorld(self.world, random.Random(self.rng.random()))
            for index in range(self.steps):
                self.step(index)
                if progress:
                    progress(1)
            self.settle()
            actors_play.settle_play(self)
            seeded, allowed = self.seed_inconsistencies()
            reports = self.reconcile_every_hour()
            probes.check_reconciliation(self.model, reports, self.world.namespaces(), seeded, allowed)
        finally:
            self.world.close()
        self.stats["payouts"] = self.provider.payouts_paid()
        notes = [f"step {v.step}: {v.kind}: {v.detail}" for v in self.model.violations]
        return Result(self.seed, self.steps, self.stats, self.model.failures(), notes, self.flags, self.fired,
                      time.monotonic() - started,
                      {"points": self.points, "provider": dict(self.provider.calls),
                       "queue_sent": self.world.queue.sent, "send_failures": self.world.queue.send_failures})


def run(seed: int, steps: int, flags: dict[str, bool] | None = None,
        progress: Callable[[int], None] | None = None) -> Result:
    """Run one seed."""
    return Sim(seed, steps, flags).run(progress)
