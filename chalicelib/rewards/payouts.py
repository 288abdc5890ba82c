"""The payout adapter: how withdrawn money leaves rewardgate.

A provider must be idempotent by `request_id` (every real transfer API is: WeChat Pay's
`out_batch_no`, Alipay's `out_biz_no`) and able to say what became of a request, because a timeout
leaves the outcome unknown and only the provider can settle it.

Only the local fake ships here. It keeps its transfers in the config table, so the API process and
the sweeper process of the local stack see the same provider, and it can be told to fail or to time
out — before or after paying — which is how the withdrawal and sweeper paths are tested.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import clock
from chalicelib.dynamo import error_code, with_retries
from chalicelib.errors import PayoutUnavailable, RewardgateError
from chalicelib.rewards.tables import ConfigItem
from chalicelib.settings import settings

PAID = "PAID"
FAILED = "FAILED"
UNKNOWN = "UNKNOWN"


class PayoutTimeout(RewardgateError):
    """The provider did not answer in time: the transfer may or may not have happened."""

    code = "payout_timeout"


@dataclass(frozen=True)
class PayoutResult:
    """A settled payout: PAID with the provider's reference, or FAILED with its reason."""

    status: str
    reference: str | None = None
    reason: str | None = None


class PayoutProvider(Protocol):
    """What rewardgate needs from a payment provider."""

    def transfer(self, request_id: str, wallet_id: str, amount: int) -> PayoutResult:
        """Pay `amount` fen for `request_id` (idempotent), or raise `PayoutTimeout`."""
        ...

    def status(self, request_id: str) -> PayoutResult:
        """What became of `request_id`: PAID, FAILED, or UNKNOWN if the provider never saw it."""
        ...


FAKE_PK = "payout-fake"
MODE_SK = "#mode"
MODES = ("ok", "fail", "timeout", "timeout_after_paying")


class FakePayoutProvider:
    """A provider for the local stack and tests; its mode is set with `set_fake_mode`."""

    def _mode(self) -> str:
        try:
            return json.loads(ConfigItem.get(FAKE_PK, MODE_SK, consistent_read=True).body)["mode"]
        except DoesNotExist:
            return "ok"

    def _record(self, request_id: str, wallet_id: str, amount: int, result: PayoutResult) -> PayoutResult:
        body = json.dumps({"status": result.status, "reference": result.reference, "reason": result.reason,
                           "wallet_id": wallet_id, "amount": amount})
        item = ConfigItem(FAKE_PK, request_id, body=body, updated_at_ms=clock.now_ms())
        try:
            with_retries(lambda: item.save(condition=ConfigItem.sk.does_not_exist(), add_version_condition=False))
        except PutError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return self.status(request_id)  # idempotent: the first outcome stands
        return result

    def transfer(self, request_id: str, wallet_id: str, amount: int) -> PayoutResult:
        """Pay, fail, or time out, as the configured mode says."""
        existing = self.status(request_id)
        if existing.status != UNKNOWN:
            return existing
        mode = self._mode()
        if mode == "timeout":
            raise PayoutTimeout("fake provider timed out before paying")
        if mode == "fail":
            return self._record(request_id, wallet_id, amount, PayoutResult(FAILED, reason="fake provider refused"))
        result = self._record(request_id, wallet_id, amount, PayoutResult(PAID, reference=f"fake-{request_id}"))
        if mode == "timeout_after_paying":
            raise PayoutTimeout("fake provider paid but the answer was lost")
        return result

    def status(self, request_id: str) -> PayoutResult:
        """The recorded outcome, or UNKNOWN."""
        try:
            body = json.loads(ConfigItem.get(FAKE_PK, request_id, consistent_read=True).body)
        except DoesNotExist:
            return PayoutResult(UNKNOWN)
        return PayoutResult(body["status"], reference=body["reference"], reason=body["reason"])


def set_fake_mode(mode: str) -> None:
    """Tell the fake provider how to behave from now on: ok, fail, timeout, timeout_after_paying."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    item = ConfigItem(FAKE_PK, MODE_SK, body=json.dumps({"mode": mode}), updated_at_ms=clock.now_ms())
    with_retries(lambda: item.save(add_version_condition=False))


def provider() -> PayoutProvider:
    """The configured payout provider (`RG_PAYOUT_PROVIDER`); `PayoutUnavailable` when there is none.

    `fake` is the local stack's provider; `none` (the prod default until a real provider adapter is
    written, see README "Payouts") refuses withdrawals before anything is debited.
    """
    name = settings().payout_provider
    if name == "fake":
        return FakePayoutProvider()
    raise PayoutUnavailable(f"no payout provider is configured (RG_PAYOUT_PROVIDER={name!r})", provider=name)
