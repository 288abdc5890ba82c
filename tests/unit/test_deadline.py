"""The retry policy's deadline (`chalicelib.deadline`, `dynamo.with_retries`) on a simulated clock: attempts are
counted, never timed."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from chalicelib import deadline, dynamo
from chalicelib.errors import StorageUnavailable


class Context:
    """A Lambda context with a fixed remaining time."""

    def __init__(self, remaining_s: float) -> None:
        self.remaining_ms = int(remaining_s * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def sim(monkeypatch):
    """time.monotonic / time.sleep on a simulated clock; returns the clock's state."""
    state = {"now": 100.0}
    monkeypatch.setattr(time, "monotonic", lambda: state["now"])
    monkeypatch.setattr(time, "sleep", lambda s: state.update(now=state["now"] + s))
    return state


def throttled_call(sim, attempts: list[float], took_s: float):
    def operation():
        attempts.append(sim["now"])
        sim["now"] += took_s
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GetItem")

    return operation


def test_with_retries__throttled_every_attempt__stops_at_the_deadline_with_deadline_exceeded(sim):
    # GIVEN work with a deadline, and a call throttled every time after a bit less than 30 % of the budget
    attempts: list[float] = []
    context = Context(60)
    budget = deadline.budget_s(context)
    with deadline.bounded(context):
        end = sim["now"] + budget
        # WHEN it is run with retries
        with pytest.raises(deadline.DeadlineExceeded):
            dynamo.with_retries(throttled_call(sim, attempts, took_s=budget / 3.4))
    # THEN only the attempts that could start before the deadline ran (4 of the 6 allowed)
    assert len(attempts) == 4
    assert all(at < end for at in attempts)


def test_with_retries__no_deadline__the_attempt_count_bounds_the_retries(sim):
    attempts: list[float] = []
    with pytest.raises(StorageUnavailable) as raised:
        dynamo.with_retries(throttled_call(sim, attempts, took_s=1.0))
    assert len(attempts) == dynamo.ATTEMPTS
    assert not isinstance(raised.value, deadline.DeadlineExceeded)


def test_with_retries__deadline_already_passed__no_call_starts(sim):
    attempts: list[float] = []
    with deadline.bounded(Context(60)):
        sim["now"] += 60
        with pytest.raises(deadline.DeadlineExceeded):
            dynamo.with_retries(throttled_call(sim, attempts, took_s=1.0))
    assert attempts == []


def test_budget__lambda_remaining_and_request_limit__the_smaller_minus_the_margin_at_most_half_of_it():
    margin = deadline.margin_s()
    assert deadline.budget_s(Context(900), limit_s=2 * margin + 10) == pytest.approx(margin + 10)
    assert deadline.budget_s(Context(4 * margin)) == pytest.approx(3 * margin)
    # a function shorter than two margins (the 10 s callback function) keeps half its time
    assert deadline.budget_s(Context(margin)) == pytest.approx(margin / 2)
    assert deadline.budget_s(None) is None


def test_deadline__outside_any_work__never_expires_and_scopes_do_not_leak(sim):
    assert deadline.remaining_s() == float("inf") and not deadline.expired()
    margin = deadline.margin_s()
    with deadline.bounded(Context(2 * margin + 20)):
        assert deadline.remaining_s() == pytest.approx(margin + 20)
        sim["now"] += margin + 21
        assert deadline.expired()
    assert not deadline.expired()


def test_deadline_exceeded__answered_as_the_storage_problem():
    error = deadline.DeadlineExceeded("deadline reached", attempts=3, cause="ThrottlingException")
    assert isinstance(error, StorageUnavailable)
    assert error.body() == StorageUnavailable("x").body()
    assert error.title() == StorageUnavailable.title()


def sqs_event(n: int) -> dict:
    return {"Records": [{"messageId": f"m{i}", "receiptHandle": f"h{i}", "body": str(i), "attributes": {},
                         "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"}
                        for i in range(n)]}


@pytest.mark.parametrize("k", [0, 2, 5])
def test_process_sqs_batch__deadline_passes_after_k_records__the_rest_reported_failed_without_running(sim, k):
    from chalicelib.batch import process_sqs_batch

    ran: list[str] = []

    def handler(record):
        ran.append(record.body)
        if len(ran) == k:
            sim["now"] += 3600  # the invocation's time is gone

    # GIVEN a batch of 5 under a deadline that passes once k records have run (at once for k = 0)
    context = Context(60)
    with deadline.bounded(context):
        if k == 0:
            sim["now"] += 3600
        # WHEN it is processed
        answer = process_sqs_batch(sqs_event(5), handler, context)
    # THEN the k records ran, the others are answered as failures (all 5 when none ran: still an answer)
    assert ran == [str(i) for i in range(k)]
    assert answer == {"batchItemFailures": [{"itemIdentifier": f"m{i}"} for i in range(k, 5)]}
