"""The independent model of the money path: what each actor did, what the system answered, what must hold.

It imports nothing from `chalicelib` (a test parses its imports): it knows the activity's configuration as plain
data the simulation gave it, the rewards the upstream callers meant to grant, the withdrawals the users asked
for, and every answer. From those alone it derives what the next answer may be and what storage must hold.

Definitions (per user, money in fen):
- a reward is one prize won at `won_at_ms` (one order id); a *placement* is an order the system answered 2xx for
  (child, order id, amount) — or, after an attempt that died without an answer, one found in storage;
- granted(u) = sum of u's placements' amounts (one reward placed twice counts twice here, and is a
  double_credits violation of its own);
- conservation: granted(u) = sum over u's child wallets of (balance + pending + withdrawn - refunded);
- available(u, child) = granted(u, child) - debits(u, child), a debit being a withdrawal PAID or
  PAYOUT_PENDING (a REFUNDED one gave its money back).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
FUTURE_SLACK_MS = 300_000

PAID = "PAID"
PENDING = "PAYOUT_PENDING"
REFUNDED = "REFUNDED"
UNKNOWN = "UNKNOWN"    # an attempt died without an answer; storage decides
NOT_DEBITED = "NOT_DEBITED"


@dataclass(frozen=True)
class ChildWindow:
    """A child activity's window [starts_at_ms, ends_at_ms)."""

    sub_activity_id: str
    purpose: str
    starts_at_ms: int
    ends_at_ms: int


@dataclass(frozen=True)
class SceneSpec:
    """How a scene grants."""

    scene_id: str
    total: int
    stock_control: bool
    shard_count: int
    order_cap: int
    award_type: str = "cash"
    template_id: str | None = None  # coupon scenes: what their rewards credit (`coupon:{template}`)


@dataclass(frozen=True)
class Plan:
    """The configuration the simulation gives the system (and the model)."""

    activity_id: str
    children: tuple[ChildWindow, ...]
    scenes: tuple[SceneSpec, ...]
    users: tuple[str, ...]
    retry_horizon_ms: int = 86_400_000

    def child_at(self, at_ms: int) -> str | None:
        """The child whose window holds `at_ms`."""
        return next((c.sub_activity_id for c in self.children if c.starts_at_ms <= at_ms < c.ends_at_ms), None)

    def wallet_child_at(self, at_ms: int) -> str | None:
        """The child whose wallet a user withdraws from at `at_ms`: the latest that has started."""
        started = [c for c in self.children if c.starts_at_ms <= at_ms]
        return max(started, key=lambda c: c.starts_at_ms).sub_activity_id if started else None

    def scene(self, scene_id: str) -> SceneSpec:
        """A scene by id."""
        return next(s for s in self.scenes if s.scene_id == scene_id)


@dataclass
class Reward:
    """One prize an upstream caller must grant exactly once."""

    key: int
    user: str
    scene_id: str
    rain_id: str
    stage: str
    amount: int
    won_at_ms: int
    placements: dict[tuple[str, str], int] = field(default_factory=dict)  # (child, order id) -> amount
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)      # the reward tokens answered
    created: int = 0          # 202 answers
    attempts: int = 0
    died: int = 0             # attempts without an answer
    refused: str | None = None

    @property
    def settled(self) -> bool:
        """Whether the caller has a definitive answer (placed or refused)."""
        return bool(self.placements) or self.refused is not None


@dataclass
class Withdrawal:
    """One withdrawal request of a user (keyed by user and request id, per the parent activity)."""

    user: str
    request_id: str
    amount: int
    child: str
    status: str
    at_ms: int


@dataclass
class Violation:
    """One thing that must not happen, with the step it was seen at."""

    kind: str
    step: int
    detail: str


COUNTED = ("oversold", "double_credits", "lost", "unpaid_debits", "double_payouts", "negative_balances",
           "conservation_error", "answer_mismatches", "recon_missed", "recon_false",
           # money with no budget behind it (a grant the public API should have refused: an internal activity)
           "unbudgeted",
           # an order neither credited nor reported at the end of the run
           "stuck_forever",
           # a closed play bill whose developer credit differs from the model's own arithmetic
           "bill_mismatch")


class Model:
    """Rewards, withdrawals and answers; the expectations derived from them; the violations seen."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.rewards: list[Reward] = []
        self.withdrawals: dict[tuple[str, str], Withdrawal] = {}
        self.counts: Counter = Counter()
        self.violations: list[Violation] = []
        self._seen: set[tuple[str, object]] = set()
        self.step = 0
        self.caps = {scene.scene_id: scene.order_cap for scene in plan.scenes}  # as the operator last set them
        self.switched_off: set[str] = set()  # scenes whose grants the operator turned off
        self.cash = {scene.scene_id for scene in plan.scenes if scene.award_type == "cash"}

    # --- violations ------------------------------------------------------------------------

    def violate(self, kind: str, detail: str, key: object = None) -> None:
        """Record a violation (each distinct `key` counted once; the first ones kept with their step)."""
        assert kind in COUNTED, kind
        if key is not None:
            if (kind, key) in self._seen:
                return
            self._seen.add((kind, key))
        self.counts[kind] += 1
        if len(self.violations) < 50:
            self.violations.append(Violation(kind, self.step, detail))

    def failures(self) -> dict[str, int]:
        """Every counted kind and how often it was seen."""
        return {kind: self.counts[kind] for kind in COUNTED}

    # --- rewards ---------------------------------------------------------------------------

    def new_reward(self, user: str, scene_id: str, amount: int, won_at_ms: int) -> Reward:
        """A prize just won."""
        reward = Reward(len(self.rewards), user, scene_id, f"r{len(self.rewards)}", "1", amount, won_at_ms)
        self.rewards.append(reward)
        return reward

    def expected_child(self, reward: Reward) -> str | None:
        """The child a reward belongs to: the one open when it was won (whenever the grant arrives)."""
        return self.plan.child_at(reward.won_at_ms)

    def record_grant(self, reward: Reward, conflicting: bool, amount: int, now_ms: int, status: int | None,
                     body: dict | None) -> None:
        """Judge one grant answer against the reward's history, then remember it."""
        reward.attempts += 1
        if status == 503 and (body or {}).get("code") == "storage_unavailable":
            status = None  # retryable, outcome unknown: as if no answer came (storage decides)
        if status is None:
            reward.died += 1
            return
        code = (body or {}).get("code")
        if status in (200, 202):
            self._placed(reward, conflicting, status, body or {}, now_ms)
            return
        if code == "order_conflict":
            if not conflicting:
                self.violate("answer_mismatches", f"reward {reward.key}: identical repeat answered order_conflict")
            return
        if code == "switched_off":
            if reward.scene_id not in self.switched_off:
                self.violate("answer_mismatches", f"reward {reward.key}: switched_off while its scene's grants are on")
            return
        if code == "amount_over_cap":
            if amount <= self.caps[reward.scene_id] or (reward.placements and not conflicting):
                self.violate("answer_mismatches", f"reward {reward.key} of {amount} (cap {self.caps[reward.scene_id]}"
                                                  f", placed {sorted(reward.placements)}): amount_over_cap")
            if not conflicting and not reward.placements:
                reward.refused = reward.refused or code
            return
        if code == "open_time_out_of_range":
            if reward.won_at_ms >= now_ms - self.plan.retry_horizon_ms and reward.won_at_ms <= now_ms + FUTURE_SLACK_MS:
                self.violate("answer_mismatches", f"reward {reward.key}: open time refused inside the horizon")
            reward.refused = reward.refused or code
            return
        if code == "outside_activity_window":
            if self.expected_child(reward) is not None:
                self.violate("answer_mismatches", f"reward {reward.key}: outside window, but won in "
                                                  f"{self.expected_child(reward)}")
            reward.refused = reward.refused or code
            return
        if code == "sold_out" and self.plan.scene(reward.scene_id).stock_control:
            if reward.placements and not conflicting:
                self.violate("answer_mismatches", f"reward {reward.key}: a repeat of a placed order answered sold_out")
            if not conflicting:
                reward.refused = reward.refused or code
            return
        self.violate("answer_mismatches", f"reward {reward.key}: unexpected answer {status} {code}")

    def _placed(self, reward: Reward, conflicting: bool, status: int, body: dict, now_ms: int) -> None:
        placement = (body.get("sub_activity_id", "?"), body.get("order_id", "?"))
        amount = int(body.get("amount", 0))
        if conflicting and placement not in reward.placements:
            self.violate("double_credits", f"reward {reward.key}: a different body for its order id created a "
                                           f"second order in {placement[0]} (answered {status})")
        elif placement not in reward.placements and reward.placements:
            self.violate("double_credits", f"reward {reward.key}: placed again in {placement[0]} after "
                                           f"{sorted(reward.placements)} (retry at {now_ms})")
        elif status == 202 and placement in reward.placements:
            self.violate("double_credits", f"reward {reward.key}: answered created twice for {placement}")
        if status == 200 and not reward.attempts - 1:
            self.violate("answer_mismatches", f"reward {reward.key}: first attempt answered 200 (existing)")
        if placement[0] != self.expected_child(reward):
            self.violate("answer_mismatches", f"reward {reward.key}: won in {self.expected_child(reward)}, "
                                              f"placed in {placement[0]}")
        if not conflicting and amount != reward.amount:
            self.violate("answer_mismatches", f"reward {reward.key}: amount {amount} != {reward.amount}")
        reward.created += status == 202
        reward.placements.setdefault(placement, amount)
        if body.get("token") and not conflicting:
            reward.tokens[placement] = body["token"]

    def found_in_storage(self, reward: Reward, placements: dict[tuple[str, str], int]) -> None:
        """After attempts that died: the orders storage holds for this reward's order id."""
        for placement, amount in placements.items():
            if placement not in reward.placements:
                if reward.placements:
                    self.violate("double_credits", f"reward {reward.key}: storage holds a second order {placement}")
                reward.placements[placement] = amount

    def granted(self, user: str, child: str | None = None) -> int:
        """What the system granted a user (in one child, or all)."""
        return sum(amount for r in self.rewards if r.user == user and r.scene_id in self.cash
                   for (c, _), amount in r.placements.items() if child is None or c == child)

    def placed_in(self, child: str, scene_id: str) -> int:
        """Sum of the orders placed in one child's scene (what its stock counter must have consumed)."""
        return sum(amount for r in self.rewards if r.scene_id == scene_id
                   for (c, _), amount in r.placements.items() if c == child)

    # --- withdrawals -----------------------------------------------------------------------

    def debits(self, user: str, child: str) -> int:
        """Money withdrawn and not refunded from one wallet, as the users were answered."""
        return sum(w.amount for w in self.withdrawals.values()
                   if w.user == user and w.child == child and w.status in (PAID, PENDING))

    def available(self, user: str, child: str) -> int:
        """What the user may withdraw from one child's wallet (pending rewards are forced in first)."""
        return self.granted(user, child) - self.debits(user, child)

    def uncertain(self, user: str) -> bool:
        """Whether something of the user's died without an answer and is not resolved yet."""
        return any(w.user == user and w.status == UNKNOWN for w in self.withdrawals.values()) or any(
            r.user == user and r.died and not r.placements for r in self.rewards)

    def tokens_of(self, user: str, child: str) -> list[str]:
        """The reward tokens a user was given for orders in one child."""
        return [token for r in self.rewards if r.user == user and r.scene_id in self.cash
                for (c, _), token in r.tokens.items() if c == child]

    def record_withdrawal(self, user: str, request_id: str, amount: int, now_ms: int, provider_healthy: bool,
                          status: int | None, body: dict | None, foreign_token: bool = False,
                          racing: bool = False) -> None:
        """Judge one withdrawal answer, then remember it (`foreign_token`: it presented another wallet's token;
        `racing`: it ran at the same moment as another of the user's withdrawals, so the balance it read may
        already include the other's debit, and which of the two was refused is not decided)."""
        child = self.plan.wallet_child_at(now_ms) or "?"
        first = self.withdrawals.get((user, request_id))
        if first is not None and first.status == NOT_DEBITED:
            first = None
        if status == 503 and (body or {}).get("code") == "storage_unavailable":
            status = None  # retryable, outcome unknown: as if no answer came (storage decides)
        if status is None:
            if first is None:
                self.withdrawals[(user, request_id)] = Withdrawal(user, request_id, amount, child, UNKNOWN, now_ms)
            return
        body = body or {}
        code, answered = body.get("code"), body.get("status")
        if first is not None:
            self._repeat(first, amount, status, code, answered)
            return
        if foreign_token:
            if (status, code) != (400, "invalid_token"):
                self.violate("answer_mismatches", f"withdrawal {user}/{request_id} with another wallet's token: "
                                                  f"answered {status} {code or answered}")
            return
        available = self.available(user, child)
        if racing and code == "insufficient_balance" and amount > body.get("balance", -1) >= 0:
            self.withdrawals[(user, request_id)] = Withdrawal(user, request_id, amount, child, NOT_DEBITED, now_ms)
            return
        if amount > available:
            if (status, code, body.get("balance")) != (409, "insufficient_balance", available):
                self.violate("answer_mismatches", f"withdrawal {user}/{request_id}: {amount} > available "
                                                  f"{available}, answered {status} {code} {body.get('balance')}")
            self.withdrawals[(user, request_id)] = Withdrawal(user, request_id, amount, child, NOT_DEBITED, now_ms)
            return
        outcome = {(200, PAID): PAID, (202, PENDING): PENDING, (502, REFUNDED): REFUNDED}.get((status, answered))
        if outcome is None or (provider_healthy and outcome != PAID):
            self.violate("answer_mismatches", f"withdrawal {user}/{request_id} of {amount} (available "
                                              f"{available}): answered {status} {code or answered}")
            if code == "insufficient_balance":
                self.withdrawals[(user, request_id)] = Withdrawal(user, request_id, amount, child, NOT_DEBITED,
                                                                  now_ms)
                return
            outcome = outcome or UNKNOWN
        expected_balance = available if outcome == REFUNDED else available - amount
        if body.get("balance") is not None and body["balance"] != expected_balance and not racing:
            self.violate("answer_mismatches", f"withdrawal {user}/{request_id}: balance {body['balance']} != "
                                              f"{expected_balance}")
        self.withdrawals[(user, request_id)] = Withdrawal(user, request_id, amount, child, outcome, now_ms)

    def _repeat(self, first: Withdrawal, amount: int, status: int, code: str | None, answered: str | None) -> None:
        where = f"withdrawal {first.user}/{first.request_id} repeated"
        if amount != first.amount:
            if (status, code) != (409, "withdrawal_conflict"):
                self.violate("answer_mismatches", f"{where} with another amount: answered {status} {code}")
            return
        outcome = {(200, PAID): PAID, (202, PENDING): PENDING, (502, REFUNDED): REFUNDED}.get((status, answered))
        if outcome is None:
            self.violate("answer_mismatches", f"{where}: answered {status} {code or answered}")
            return
        allowed = {first.status} if first.status in (PAID, REFUNDED) else {PAID, PENDING, REFUNDED}
        if outcome not in allowed:
            self.violate("answer_mismatches", f"{where}: answered {outcome}, first outcome {first.status}")
            return
        first.status = outcome

    def learned(self, user: str, request_id: str, status: str | None) -> None:
        """What a read of the withdrawal said (None: it does not exist, nothing was debited)."""
        record = self.withdrawals.get((user, request_id))
        if record is None:
            return
        if status is None:
            if record.status in (PAID, PENDING):
                self.violate("lost", f"withdrawal {user}/{request_id} answered {record.status} has vanished")
            record.status = NOT_DEBITED
            return
        if record.status in (PAID, REFUNDED) and status != record.status:
            self.violate("answer_mismatches", f"withdrawal {user}/{request_id} was {record.status}, now {status}")
        record.status = status

    def open_withdrawals(self) -> list[Withdrawal]:
        """Withdrawals whose outcome the user does not know yet."""
        return [w for w in self.withdrawals.values() if w.status in (PENDING, UNKNOWN)]
