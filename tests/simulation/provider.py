"""The simulated payout provider: the money that actually left, in its own ledger.

Independent of rewardgate (imports nothing from `chalicelib`). It behaves like a real transfer API: idempotent
by payout id, and, while unhealthy, it fails, times out before or after paying, and answers "unknown" to a
status query. Its ledger is the truth the probes compare rewardgate's withdrawals with.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

PAID = "PAID"
FAILED = "FAILED"
UNKNOWN = "UNKNOWN"
PROCESSING = "PROCESSING"  # accepted, not decided yet: it may still pay (bank transfers: minutes to hours)
BEHAVIOURS = ("pay", "fail", "timeout_before", "timeout_after")
# Asynchronous payouts: answered PROCESSING, or the answer lost after the transfer was accepted (the caller
# timed out); either way it is decided later, PAID or FAILED.
ASYNC_BEHAVIOURS = ("processing", "accepted_then_timeout")
MAX_PROCESSING_MS = 45 * 60_000


class Timeout(Exception):
    """No answer in time; the transfer may or may not have happened."""


class Conflict(Exception):
    """A payout id repeated with another recipient or amount (nothing is paid)."""


@dataclass
class Payout:
    """One entry of the provider's ledger."""

    payout_id: str
    recipient: str
    amount: int
    status: str
    at_ms: int
    seeded: bool = False  # put there on purpose by the simulation (reconciliation must report it)
    decided: str = ""     # PROCESSING: what it becomes at `at_ms` (when it is decided)


class SimProvider:
    """A payout provider with its own ledger, driven by the simulation's random choices."""

    def __init__(self, rng: random.Random, strict: bool) -> None:
        self.rng = rng
        # strict: a repeat with another recipient/amount raises Conflict (the new contract); otherwise the
        # first outcome is answered (what the fake provider of the old contract did)
        self.strict = strict
        self.healthy = True
        self.asynchronous = False  # answers PROCESSING / accepts then times out, and decides later
        self.now = lambda: 0       # the simulated clock (set by the world)
        self.ledger: dict[str, Payout] = {}
        self.calls = {"transfer": 0, "status": 0, "timeouts": 0, "unknown_answers": 0, "conflicts": 0,
                      "repeats_other_recipient": 0, "processing": 0}

    # --- the provider's API ----------------------------------------------------------------

    def transfer(self, payout_id: str, recipient: str, amount: int, now_ms: int) -> tuple[str, str | None]:
        """(status, reference) or raise Timeout/Conflict."""
        self.calls["transfer"] += 1
        self._decide_due()
        existing = self.ledger.get(payout_id)
        if existing is not None:
            if (existing.recipient, existing.amount) != (recipient, amount):
                self.calls["repeats_other_recipient"] += 1
                if self.strict:
                    self.calls["conflicts"] += 1
                    raise Conflict(payout_id)
            return existing.status, f"ref-{payout_id}"
        behaviour = "pay" if self.healthy else self.rng.choices(BEHAVIOURS, weights=(5, 2, 2, 2))[0]
        if self.asynchronous and self.rng.random() < 0.3:
            behaviour = self.rng.choice(ASYNC_BEHAVIOURS)
            decided = PAID if self.rng.random() < 0.7 else FAILED
            self.ledger[payout_id] = Payout(payout_id, recipient, amount, PROCESSING,
                                            now_ms + self.rng.randint(60_000, MAX_PROCESSING_MS), decided=decided)
            self.calls["processing"] += 1
            if behaviour == "accepted_then_timeout":
                self.calls["timeouts"] += 1
                raise Timeout(payout_id)
            return PROCESSING, f"ref-{payout_id}"
        if behaviour == "timeout_before":
            self.calls["timeouts"] += 1
            raise Timeout(payout_id)
        status = FAILED if behaviour == "fail" else PAID
        self.ledger[payout_id] = Payout(payout_id, recipient, amount, status, now_ms)
        if behaviour == "timeout_after":
            self.calls["timeouts"] += 1
            raise Timeout(payout_id)
        return status, f"ref-{payout_id}"

    def status(self, payout_id: str) -> tuple[str, str | None]:
        """What became of a payout id: PAID, FAILED, or UNKNOWN (never seen — or, unhealthy, not answering)."""
        self.calls["status"] += 1
        self._decide_due()
        if not self.healthy and self.rng.random() < 0.25:
            self.calls["unknown_answers"] += 1
            return UNKNOWN, None
        existing = self.ledger.get(payout_id)
        if existing is None:
            return UNKNOWN, None
        return existing.status, f"ref-{payout_id}"

    def records(self, start_ms: int, end_ms: int) -> list[Payout]:
        """Every settled payout in [start_ms, end_ms)."""
        self._decide_due()
        return [p for p in self.ledger.values() if start_ms <= p.at_ms < end_ms and p.status != PROCESSING]

    def _decide_due(self) -> None:
        """Payouts still processing whose time has come are decided (PAID or FAILED) at that time."""
        now_ms = self.now()
        for payout in self.ledger.values():
            if payout.status == PROCESSING and payout.at_ms <= now_ms:
                payout.status = payout.decided

    # --- what the probes read --------------------------------------------------------------

    def seed_stray_payout(self, recipient: str, amount: int, at_ms: int) -> Payout:
        """A payout no withdrawal asked for (an inconsistency reconciliation must report)."""
        payout = Payout(f"stray-{len(self.ledger)}-{recipient}", recipient, amount, PAID, at_ms, seeded=True)
        self.ledger[payout.payout_id] = payout
        return payout

    def paid_to(self, recipient: str) -> int:
        """What the provider actually paid a recipient (seeded strays excluded)."""
        self._decide_due()
        return sum(p.amount for p in self.ledger.values() if p.recipient == recipient and p.status == PAID
                   and not p.seeded)

    def payouts_paid(self) -> int:
        """How many payouts were made."""
        self._decide_due()
        return sum(1 for p in self.ledger.values() if p.status == PAID and not p.seeded)
