"""The payout adapter: how withdrawn money leaves rewardgate.

The contract (`PayoutProvider`) every provider adapter, the local fake and the simulation's fake keep:
- `transfer(payout_id, recipient, amount)` pays `amount` fen to `recipient` (the user id, the same in
  every child activity) once per `payout_id`, a globally unique id rewardgate stores on the withdrawal
  before it calls. A repeat with the same recipient and amount answers the first outcome; with another
  recipient or amount it raises `PayoutConflict` and pays nothing. It may raise `PayoutTimeout`: then the
  transfer may or may not have happened. Real transfer APIs are idempotent the same way (WeChat Pay's
  `out_batch_no`, Alipay's `out_biz_no`).
- `transfer` and `status` answer PAID (with the provider's reference), FAILED (a definite refusal, with a
  reason), or PROCESSING (accepted, not decided: real transfers stay so for minutes to hours and may still
  pay); `status` answers UNKNOWN for a payout id it never saw. Only FAILED ever leads to a refund
  (`chalicelib.rewards.payout_states` decides what each answer means).
- `records(start_ms, end_ms)` lists the transfers the provider decided in `[start_ms, end_ms)` with their
  status; reconciliation compares the PAID ones with rewardgate's PAID withdrawals.

Only the local fake ships here. It keeps its ledger in the config table (one item per payout id), so the
API process and the sweeper process of the local stack see the same provider, and it can be told to fail
or to time out — before or after paying — or to keep transfers processing (`processing`: each new transfer
is accepted as PROCESSING and is decided by the first `status` query made in another mode: `ok` pays it,
`fail` refuses it), which is how the withdrawal and sweeper paths are tested.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import clock
from chalicelib.dynamo import error_code, with_retries
from chalicelib.errors import PayoutConflict, PayoutUnavailable, RewardgateError
from chalicelib.rewards import payout_states
from chalicelib.rewards.tables import ConfigItem
from chalicelib.settings import FAKE_PROVIDER, settings

__all__ = ["FAILED", "PAID", "PROCESSING", "UNKNOWN", "FakePayoutProvider", "PayoutConflict", "PayoutProvider",
           "PayoutRecord", "PayoutResult", "PayoutTimeout", "provider", "set_fake_mode"]

PAID = payout_states.PAID
FAILED = payout_states.FAILED
PROCESSING = payout_states.PROCESSING
UNKNOWN = payout_states.UNKNOWN


class PayoutTimeout(RewardgateError):
    """The provider did not answer in time: the transfer may or may not have happened."""

    code = "payout_timeout"


@dataclass(frozen=True)
class PayoutResult:
    """A provider's answer: PAID with its reference, FAILED with its reason, PROCESSING, or UNKNOWN (never seen)."""

    status: str
    reference: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class PayoutRecord:
    """One transfer as the provider's own ledger has it."""

    payout_id: str
    recipient: str
    amount: int
    status: str
    at_ms: int


class PayoutProvider(Protocol):
    """What rewardgate needs from a payment provider (see the module docstring)."""

    def transfer(self, payout_id: str, recipient: str, amount: int) -> PayoutResult:
        """Pay `amount` fen to `recipient` once per `payout_id`; `PayoutConflict` on other content; may time out."""
        ...

    def status(self, payout_id: str) -> PayoutResult:
        """What became of `payout_id`: PAID, FAILED, PROCESSING, or UNKNOWN if the provider never saw it."""
        ...

    def records(self, start_ms: int, end_ms: int) -> list[PayoutRecord]:
        """The transfers the provider decided in `[start_ms, end_ms)`, with their status."""
        ...


FAKE_PK = "payout-fake"
MODE_SK = "#mode"
MODES = ("ok", "fail", "timeout", "timeout_after_paying", "processing")


class FakePayoutProvider:
    """A provider for the local stack and tests; its mode is set with `set_fake_mode`."""

    def _mode(self) -> str:
        try:
            return json.loads(ConfigItem.get(FAKE_PK, MODE_SK, consistent_read=True).body)["mode"]
        except DoesNotExist:
            return "ok"

    def _entry(self, payout_id: str) -> dict | None:
        try:
            return json.loads(with_retries(lambda: ConfigItem.get(FAKE_PK, payout_id, consistent_read=True)).body)
        except DoesNotExist:
            return None

    def _record(self, payout_id: str, recipient: str, amount: int, result: PayoutResult) -> PayoutResult:
        now_ms = clock.now_ms()
        body = json.dumps({"status": result.status, "reference": result.reference, "reason": result.reason,
                           "recipient": recipient, "amount": amount, "at_ms": now_ms})
        item = ConfigItem(FAKE_PK, payout_id, body=body, updated_at_ms=now_ms)
        try:
            with_retries(lambda: item.save(condition=ConfigItem.sk.does_not_exist(), add_version_condition=False))
        except PutError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return self._repeat(payout_id, recipient, amount)  # a concurrent first call stands
        return result

    def _repeat(self, payout_id: str, recipient: str, amount: int) -> PayoutResult:
        entry = self._entry(payout_id)
        if entry is None:
            return PayoutResult(UNKNOWN)
        if entry["recipient"] != recipient or int(entry["amount"]) != amount:
            raise PayoutConflict(f"payout {payout_id} exists for another recipient or amount", payout_id=payout_id)
        return self._answer(payout_id, entry)

    def _answer(self, payout_id: str, entry: dict) -> PayoutResult:
        """The entry's outcome; a PROCESSING one is decided now unless the mode still says processing."""
        if entry["status"] == PROCESSING:
            mode = self._mode()
            if mode not in ("ok", "fail"):
                return PayoutResult(PROCESSING)
            decided = (PayoutResult(PAID, reference=f"fake-{payout_id}") if mode == "ok"
                       else PayoutResult(FAILED, reason="fake provider refused"))
            return self._decide(payout_id, entry, decided)
        return PayoutResult(entry["status"], reference=entry["reference"], reason=entry["reason"])

    def _decide(self, payout_id: str, entry: dict, result: PayoutResult) -> PayoutResult:
        """Move a PROCESSING entry to its outcome once (a concurrent decision stands)."""
        now_ms = clock.now_ms()
        body = json.dumps(entry | {"status": result.status, "reference": result.reference, "reason": result.reason,
                                   "at_ms": now_ms})
        item = ConfigItem(FAKE_PK, payout_id, body=body, updated_at_ms=now_ms)
        try:
            with_retries(lambda: item.save(condition=ConfigItem.body == json.dumps(entry),
                                           add_version_condition=False))
        except PutError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            decided = self._entry(payout_id) or entry
            return PayoutResult(decided["status"], reference=decided["reference"], reason=decided["reason"])
        return result

    def transfer(self, payout_id: str, recipient: str, amount: int) -> PayoutResult:
        """Pay, fail, or time out, as the configured mode says; a repeat answers the first outcome."""
        existing = self._repeat(payout_id, recipient, amount)
        if existing.status != UNKNOWN:
            return existing
        mode = self._mode()
        if mode == "timeout":
            raise PayoutTimeout("fake provider timed out before paying")
        if mode == "fail":
            return self._record(payout_id, recipient, amount, PayoutResult(FAILED, reason="fake provider refused"))
        if mode == "processing":
            return self._record(payout_id, recipient, amount, PayoutResult(PROCESSING))
        result = self._record(payout_id, recipient, amount, PayoutResult(PAID, reference=f"fake-{payout_id}"))
        if mode == "timeout_after_paying":
            raise PayoutTimeout("fake provider paid but the answer was lost")
        return result

    def status(self, payout_id: str) -> PayoutResult:
        """The recorded outcome (a processing one decided by the current mode), or UNKNOWN."""
        entry = self._entry(payout_id)
        if entry is None:
            return PayoutResult(UNKNOWN)
        return self._answer(payout_id, entry)

    def records(self, start_ms: int, end_ms: int) -> list[PayoutRecord]:
        """Every transfer decided in `[start_ms, end_ms)` (the fake reads its whole ledger: local use only)."""
        items = with_retries(lambda: list(ConfigItem.query(FAKE_PK, consistent_read=True)))
        out = []
        for item in items:
            if item.sk == MODE_SK:
                continue
            entry = json.loads(item.body)
            if entry["status"] != PROCESSING and start_ms <= int(entry["at_ms"]) < end_ms:
                out.append(PayoutRecord(item.sk, entry["recipient"], int(entry["amount"]), entry["status"],
                                        int(entry["at_ms"])))
        return sorted(out, key=lambda r: (r.at_ms, r.payout_id))


def set_fake_mode(mode: str) -> None:
    """Tell the fake provider how to behave from now on: ok, fail, timeout, timeout_after_paying, processing."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    item = ConfigItem(FAKE_PK, MODE_SK, body=json.dumps({"mode": mode}), updated_at_ms=clock.now_ms())
    with_retries(lambda: item.save(add_version_condition=False))


def provider() -> PayoutProvider:
    """The configured payout provider (`RG_PAYOUT_PROVIDER`); `PayoutUnavailable` when there is none.

    `fake` is the local stack's provider (only the `local` stage may name it: `chalicelib.settings`);
    `none` (prod until a real provider adapter is written, see docs/explanation/payouts.md) refuses withdrawals before
    anything is debited. Settings refuse any other value at start-up.
    """
    name = settings().payout_provider
    if name == FAKE_PROVIDER:
        return FakePayoutProvider()
    raise PayoutUnavailable("no payout provider is configured for this deployment", provider=name)
