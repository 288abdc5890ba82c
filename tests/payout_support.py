"""An asynchronous payout provider under the test's control, and an independent model of who holds the money.

`AsyncProvider` keeps the payout contract (`chalicelib.rewards.payouts`) the way real transfer APIs do:
a transfer is accepted and stays *processing* until the test settles it (`complete`); an answer can be
lost after the provider accepted (`timeout_after_accepting`) or before it saw the call (`timeout_unseen`).
It counts every status query, so backoff is observable, and pays at most once per payout id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.rewards.payouts import FAILED, PAID, UNKNOWN, PayoutRecord, PayoutResult, PayoutTimeout

PROCESSING = "PROCESSING"


@dataclass
class _Payout:
    recipient: str
    amount: int
    status: str
    at_ms: int


@dataclass
class AsyncProvider:
    """A payout provider whose transfers stay processing until `complete` (see the module docstring).

    `on_transfer`: "processing" (accept, answer processing), "timeout_after_accepting" (accept, lose the
    answer), "timeout_unseen" (lose the call: the provider never sees it), "paid" (pay at once).
    """

    on_transfer: str = "processing"
    now_ms: int = 0
    payouts: dict[str, _Payout] = field(default_factory=dict)
    status_calls: list[tuple[str, int]] = field(default_factory=list)
    transfer_calls: list[tuple[str, int]] = field(default_factory=list)
    status_times_out: set[str] = field(default_factory=set)  # payout ids whose status queries time out

    def transfer(self, payout_id: str, recipient: str, amount: int) -> PayoutResult:
        self.transfer_calls.append((payout_id, self.now_ms))
        if payout_id in self.payouts:
            return self._result(payout_id)
        if self.on_transfer == "timeout_unseen":
            raise PayoutTimeout("the call was lost before the provider saw it")
        status = PAID if self.on_transfer == "paid" else PROCESSING
        self.payouts[payout_id] = _Payout(recipient, amount, status, self.now_ms)
        if self.on_transfer == "timeout_after_accepting":
            raise PayoutTimeout("the provider accepted it; the answer was lost")
        return self._result(payout_id)

    def status(self, payout_id: str) -> PayoutResult:
        self.status_calls.append((payout_id, self.now_ms))
        if payout_id in self.status_times_out:
            raise PayoutTimeout("the status query timed out")
        return self._result(payout_id) if payout_id in self.payouts else PayoutResult(UNKNOWN)

    def records(self, start_ms: int, end_ms: int) -> list[PayoutRecord]:
        return [PayoutRecord(pid, p.recipient, p.amount, p.status, p.at_ms) for pid, p in self.payouts.items()
                if p.status != PROCESSING and start_ms <= p.at_ms < end_ms]

    def complete(self, status: str = PAID, payout_ids: list[str] | None = None) -> None:
        """The provider finishes processing (all, or the named payouts): PAID or FAILED."""
        for pid, payout in self.payouts.items():
            if payout.status == PROCESSING and (payout_ids is None or pid in payout_ids):
                payout.status, payout.at_ms = status, self.now_ms

    def _result(self, payout_id: str) -> PayoutResult:
        payout = self.payouts[payout_id]
        if payout.status == PAID:
            return PayoutResult(PAID, reference=f"ref-{payout_id}")
        if payout.status == FAILED:
            return PayoutResult(FAILED, reason="the bank refused the account")
        return PayoutResult(PROCESSING)

    def paid_to(self, recipient: str) -> int:
        """What the provider actually paid `recipient` (the independent side of the money check)."""
        return sum(p.amount for p in self.payouts.values() if p.recipient == recipient and p.status == PAID)
