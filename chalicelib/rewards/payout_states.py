"""A withdrawal's payout as a state machine: what each provider answer means, decided here, applied elsewhere.

Pure (no I/O). The provider's answers, explicitly:
- PAID        the transfer happened                                   -> settle PAID
- FAILED      a definite refusal, with the provider's reason          -> refund (the only way to a refund)
- PROCESSING  accepted, not decided yet (bank transfers: minutes to   -> stay PAYOUT_PENDING, re-query later
              hours; it may still pay)
- TIMEOUT     our call's answer was lost: it may or may not have      -> stay PAYOUT_PENDING, re-query later
              happened (an answer that arrives after we gave up is
              the provider paying anyway)
- UNKNOWN     `status` says the provider never saw the payout id      -> submit the same payout id again
              (transfers are idempotent per payout id; its answer is
              decided by this table again)
Anything else (an answer this code does not know) is treated as PROCESSING: nothing the provider might
still pay is ever refunded.

Re-queries back off exponentially from the first check (`FIRST_CHECK_MS` after the debit), doubling up to
`RECHECK_MAX_MS`; the sweeper picks withdrawals by their next check time, so a payout stuck for days
moves behind newer ones instead of holding the sweeper's page. One unresolved longer than the configured
horizon (`RG_PAYOUT_UNRESOLVED_ALARM_S`) is counted for the alarm at each of its checks; the cap is short
enough that a stuck payout is counted in every hour.
"""

from __future__ import annotations

from dataclasses import dataclass

PAID = "PAID"
FAILED = "FAILED"
PROCESSING = "PROCESSING"
UNKNOWN = "UNKNOWN"
TIMEOUT = "TIMEOUT"

# What to do with a pending withdrawal after an answer.
SETTLE_PAID = "settle_paid"
REFUND = "refund"
RECHECK = "recheck"
RESUBMIT = "resubmit"

FIRST_CHECK_MS = 60_000
RECHECK_MAX_MS = 30 * 60_000


@dataclass(frozen=True)
class Decision:
    """What an answer means for a pending withdrawal; `next_check_at_ms` for RECHECK."""

    action: str
    next_check_at_ms: int | None = None


def recheck_delay_ms(checks: int) -> int:
    """The wait before the next query after `checks` answers that decided nothing: 1, 2, 4, ... up to 30 min."""
    return min(RECHECK_MAX_MS, FIRST_CHECK_MS << min(max(checks - 1, 0), 16))


def decide(answer: str, *, now_ms: int, checks: int, from_status: bool = False) -> Decision:
    """What `answer` (one of the module's answers) means after `checks` earlier undecided answers.

    `from_status`: the answer came from a `status` query (UNKNOWN there means "never seen", so resubmit);
    from a transfer, UNKNOWN means nothing definite and is re-queried like PROCESSING.
    """
    if answer == PAID:
        return Decision(SETTLE_PAID)
    if answer == FAILED:
        return Decision(REFUND)
    if answer == UNKNOWN and from_status:
        return Decision(RESUBMIT)
    return Decision(RECHECK, now_ms + recheck_delay_ms(checks + 1))


def past_horizon(created_at_ms: int, now_ms: int, horizon_s: int) -> bool:
    """Whether a withdrawal debited at `created_at_ms` is unresolved longer than the alarm horizon."""
    return now_ms - created_at_ms > horizon_s * 1000
