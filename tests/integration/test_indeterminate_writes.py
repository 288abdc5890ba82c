"""Indeterminate DynamoDB writes (DynamoDB Local): a write lands and its answer is lost, injected at the adapter
boundary every call passes through (botocore's `BaseClient._make_api_call`, as `tests/simulation/storage_faults.py`
does). Each test names the effect a user sees: a credit tallied exactly once, an audit record written once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError, ReadTimeoutError

from chalicelib.audit import log as audit
from chalicelib.audit.tables import AuditItem
from chalicelib.errors import AuditConflict
from tests.conftest import uid
from tests.rewards_support import (
    credit_messages_of,
    distributed,
    grant_direct,
    make_campaign,
    purge_credits,
    run_credit_worker,
    wallet_id_of,
    wallet_item,
)


def _lost(operation: str, read_timeout: bool) -> Exception:
    if read_timeout:
        return ReadTimeoutError(endpoint_url="https://dynamodb.test", error="read timed out")
    return ClientError({"Error": {"Code": "InternalServerError", "Message": "test: answer lost"}}, operation)


@contextlib.contextmanager
def lost_answer(monkeypatch: Any, operation: str, nth: int, sticky: bool, read_timeout: bool = False,
                reads_fail_after: bool = False) -> Iterator[list[str]]:
    """The `nth` call of `operation` lands and its answer is lost; with `sticky`, every retry of the same request
    (same parameters) is throttled afterwards, so the caller gives up not knowing whether it landed; with
    `reads_fail_after`, every GetItem after that is throttled too (the outcome cannot be re-read)."""
    original = BaseClient._make_api_call
    seen: list[str] = []
    blocked: set[str] = set()

    def _make_api_call(client: Any, op: str, params: dict[str, Any]) -> Any:
        if client.meta.service_model.service_name != "dynamodb":
            return original(client, op, params)
        if op == "GetItem" and reads_fail_after and len(seen) >= nth:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "test"}}, op)
        if op != operation:
            return original(client, op, params)
        key = json.dumps(params, sort_keys=True, default=str)
        if key in blocked:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "test: throttled"}}, op)
        seen.append(key)
        answer = original(client, op, params)
        if len(seen) != nth:
            return answer
        if sticky:
            blocked.add(key)
        raise _lost(op, read_timeout)

    monkeypatch.setattr(BaseClient, "_make_api_call", _make_api_call)
    try:
        yield seen
    finally:
        monkeypatch.setattr(BaseClient, "_make_api_call", original)


@pytest.mark.parametrize("sticky", [True, False])
def test_credit_worker__credit_landed_answer_lost__tallied_exactly_once(client, monkeypatch, sticky):
    purge_credits()
    # GIVEN three granted orders (amounts the test remembers itself)
    campaign = make_campaign(client, order_cap=1000)
    granted = {uid("u"): 100 + 11 * i for i in range(3)}
    for user, amount in granted.items():
        assert grant_direct(campaign.grant_body(user, amount=amount))[0] == 202
    bodies = credit_messages_of(campaign)
    # WHEN the worker credits them and the 2nd credit transaction lands with its answer lost (and, sticky, its
    # retries throttled until the worker gives up on that record)
    with lost_answer(monkeypatch, "TransactWriteItems", nth=2, sticky=sticky):
        _, failed = run_credit_worker(bodies)
    # AND SQS redelivers whatever failed, with a duplicate of every record
    _, again = run_credit_worker(failed + bodies)
    # THEN every user holds exactly their grant, and the total distributed is the sum granted, counted once
    assert again == []
    for user, amount in granted.items():
        assert int(wallet_item(wallet_id_of(campaign, user)).balance) == amount
    assert distributed(campaign) == (sum(granted.values()), len(granted))


def test_credit_worker__duplicate_record_in_one_batch__tallied_once(client):
    purge_credits()
    # GIVEN two granted orders
    campaign = make_campaign(client, order_cap=1000)
    granted = {uid("u"): 70 + 9 * i for i in range(2)}
    for user, amount in granted.items():
        assert grant_direct(campaign.grant_body(user, amount=amount))[0] == 202
    bodies = credit_messages_of(campaign)
    # WHEN one invocation gets every record twice (at-least-once delivery within one batch)
    _, failed = run_credit_worker(bodies + bodies)
    # THEN each is credited and counted in the total distributed exactly once
    assert failed == []
    for user, amount in granted.items():
        assert int(wallet_item(wallet_id_of(campaign, user)).balance) == amount
    assert distributed(campaign) == (sum(granted.values()), len(granted))


def test_credit_worker__credit_outcome_unknown_and_unreadable__group_left_untallied_for_reconciliation(
        client, monkeypatch):
    purge_credits()
    # GIVEN three granted orders (one child, one asset, one hour: one tally group)
    campaign = make_campaign(client, order_cap=1000)
    granted = {uid("u"): 40 + 13 * i for i in range(3)}
    for user, amount in granted.items():
        assert grant_direct(campaign.grant_body(user, amount=amount))[0] == 202
    bodies = credit_messages_of(campaign)
    # WHEN the 2nd credit lands with its answer lost, its retries are throttled, and no read succeeds afterwards
    with lost_answer(monkeypatch, "TransactWriteItems", nth=2, sticky=True, reads_fail_after=True):
        _, failed = run_credit_worker(bodies)
    _, again = run_credit_worker(failed + bodies)
    # THEN every order is credited once, and the batch wrote no tally at all for the group (a marker without the
    # landed credit would be final and short): the distributed total waits whole for reconciliation's completion
    assert again == []
    for user, amount in granted.items():
        assert int(wallet_item(wallet_id_of(campaign, user)).balance) == amount
    assert distributed(campaign) == (0, 0)


def _audit_records(request_id: str) -> list[dict[str, Any]]:
    return [audit.view(i) for i in AuditItem.scan(AuditItem.request_id == request_id, consistent_read=True)]


@pytest.mark.parametrize("read_timeout", [False, True])
def test_audit_record__put_landed_answer_lost__exists_once(aws_stack, monkeypatch, read_timeout):
    request_id = uid("req")
    # WHEN an audit record's put lands and its answer is lost (InternalServerError, or a read timeout)
    with lost_answer(monkeypatch, "PutItem", nth=1, sticky=False, read_timeout=read_timeout):
        key = audit.record("withdraw", "arn:test", {"act_id": "a1"}, {"amount": 5}, request_id=request_id)
    # THEN the retry finding its own record is success, and exactly one record exists, with what was asked
    records = _audit_records(request_id)
    assert [(r["action"], r["target"], r["request"]) for r in records] == [("withdraw", {"act_id": "a1"},
                                                                           {"amount": 5})]
    assert key.sk.endswith(request_id)


def test_audit_record__different_record_at_same_key__conflict_and_unchanged(aws_stack, monkeypatch):
    request_id = uid("req")
    # GIVEN a record under the key the next record will take (same millisecond, same request id)
    monkeypatch.setattr(audit.clock, "now_ms", lambda: 1_800_000_000_000)
    audit.record("withdraw", "arn:test", {"act_id": "a1"}, {"amount": 5}, request_id=request_id)
    # WHEN a different record is written under it
    with pytest.raises(AuditConflict) as raised:
        audit.record("withdraw", "arn:test", {"act_id": "a1"}, {"amount": 6}, request_id=request_id)
    # THEN it is an explicit conflict, and the stored record is the first one
    assert raised.value.code == "audit_conflict"
    assert [r["request"] for r in _audit_records(request_id)] == [{"amount": 5}]
