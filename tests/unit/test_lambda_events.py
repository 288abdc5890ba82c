"""Lambda's SQS event-source semantics as played locally: receiving a batch, reading failures."""

from __future__ import annotations

from rewardgate_ops import lambda_events


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class EmptyQueue:
    """An SQS stand-in whose long polls take the time they ask for and find nothing."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.waits: list[int] = []

    def receive_message(self, **kwargs):
        self.waits.append(kwargs["WaitTimeSeconds"])
        self.clock.now += kwargs["WaitTimeSeconds"]
        return {}


def test_receive__fraction_of_a_second_left__one_long_poll_not_a_burst(monkeypatch):
    # GIVEN an empty queue and 0.4 s to wait for a first message
    clock = Clock()
    monkeypatch.setattr(lambda_events.time, "monotonic", clock)
    queue = EmptyQueue(clock)
    # WHEN a batch is received
    assert lambda_events.receive(queue, "url", 10, wait_s=0.4) == []
    # THEN the wait is rounded up to one whole-second long poll, asked once
    assert queue.waits == [1]


def test_receive__waits_longer_than_sqs_allows__capped_at_twenty_seconds(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(lambda_events.time, "monotonic", clock)
    queue = EmptyQueue(clock)
    lambda_events.receive(queue, "url", 10, wait_s=45)
    assert queue.waits == [20, 20, 5]


def test_failed_ids__unknown_or_empty_identifier__whole_batch_fails():
    ids = ["a", "b"]
    assert lambda_events.failed_ids({"batchItemFailures": [{"itemIdentifier": "b"}]}, ids) == {"b"}
    assert lambda_events.failed_ids({"batchItemFailures": [{"itemIdentifier": "zz"}]}, ids) == {"a", "b"}
    assert lambda_events.failed_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, ids) == {"a", "b"}
    assert lambda_events.failed_ids("nonsense", ids) == {"a", "b"}
    assert lambda_events.failed_ids(None, ids) == set()
