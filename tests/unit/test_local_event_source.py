"""The local event source's pure parts: handler resolution, failed-id handling, the batching window."""

from __future__ import annotations

import json
import sys
import types

import pytest
from chalice import Blueprint, Chalice

from rewardgate_ops import event_source
from rewardgate_ops.event_source import BatchingWindowClient, HandlerNotFound, queue_name_of, resolve_handler
from rewardgate_ops.lambda_events import failed_ids, scheduled_event

# --- handler resolution --------------------------------------------------------------------------

@pytest.fixture
def blueprint_module():
    """A module with a blueprint SQS handler and a schedule, registered on an app as app.py does."""
    module = types.ModuleType("rg_test_worker_module")
    bp = Blueprint(module.__name__)
    seen: list = []

    @bp.on_sqs_message(queue="some-queue", batch_size=3)
    def drain(event):
        seen.append([record.body for record in event])
        return {"batchItemFailures": []}

    @bp.schedule("rate(5 minutes)")
    def tick(event):
        seen.append(event.to_dict()["detail-type"])

    module.drain, module.tick, module.seen = drain, tick, seen
    sys.modules[module.__name__] = module
    app = Chalice(app_name="rg-test")
    app.register_blueprint(bp)
    yield app, module
    del sys.modules[module.__name__]


def test_resolve_handler__chalice_sqs_handler_string__raw_event_callable(blueprint_module):
    # GIVEN the handler_string Chalice records for a blueprint's @on_sqs_message
    app, module = blueprint_module
    (sqs_config,) = [c for c in app.event_sources if c.name == "drain"]
    assert sqs_config.handler_string == "rg_test_worker_module.drain"
    # WHEN resolved and called with a raw Lambda SQS event
    handler = resolve_handler(sqs_config.handler_string)
    answer = handler({"Records": [{"messageId": "m1", "receiptHandle": "r", "body": "hello",
                                   "attributes": {}, "messageAttributes": {}, "eventSourceARN": "arn"}]}, None)
    # THEN the user function ran on Chalice's SQSEvent and its answer comes back unchanged
    assert module.seen == [["hello"]]
    assert answer == {"batchItemFailures": []}


def test_resolve_handler__chalice_schedule_handler_string__raw_event_callable(blueprint_module):
    app, module = blueprint_module
    (schedule_config,) = [c for c in app.event_sources if c.name == "tick"]
    # WHEN the schedule's handler is resolved and called with the local scheduler's event
    resolve_handler(schedule_config.handler_string)(scheduled_event("tick"), None)
    # THEN the user function received Chalice's CloudWatchEvent built from it
    assert module.seen == ["Scheduled Event"]


@pytest.mark.parametrize(("handler_string", "fragment"), [
    ("nodots", "not 'module.attribute'"),
    ("rg_no_such_module_xyz.handler", "cannot import module"),
    ("json.no_such_function", "has no attribute 'no_such_function'"),
    ("json.__doc__", "is not callable"),
])
def test_resolve_handler__bad_string__handler_not_found_with_reason(handler_string, fragment):
    with pytest.raises(HandlerNotFound) as caught:
        resolve_handler(handler_string)
    assert fragment in str(caught.value)


def test_resolve_handler__plain_function__that_function():
    assert resolve_handler("json.dumps") is json.dumps


@pytest.mark.parametrize(("queue", "arn", "expected"), [
    ("rewardgate-local-events", None, "rewardgate-local-events"),
    (None, "arn:aws:sqs:us-east-1:123456789012:rewardgate-prod-credits", "rewardgate-prod-credits"),
])
def test_queue_name_of__name_or_arn__queue_name(queue, arn, expected):
    assert queue_name_of(queue, arn) == expected


def test_queue_name_of__neither__error():
    with pytest.raises(ValueError, match="neither a queue nor a queue ARN"):
        queue_name_of(None, None)


# --- failed ids (Lambda's ReportBatchItemFailures) -------------------------------------------------

IDS = ["m1", "m2", "m3"]


@pytest.mark.parametrize(("answer", "expected"), [
    (None, set()),
    ({}, set()),
    ({"batchItemFailures": []}, set()),
    ({"batchItemFailures": [{"itemIdentifier": "m2"}]}, {"m2"}),
    ({"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}]}, {"m1", "m3"}),
    ({"batchItemFailures": [{"itemIdentifier": "m9"}]}, set(IDS)),
    ({"batchItemFailures": [{"itemIdentifier": ""}]}, set(IDS)),
    ({"batchItemFailures": [{"itemIdentifier": None}]}, set(IDS)),
    ({"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "nope"}]}, set(IDS)),
    ("ok", set(IDS)),
    ([{"itemIdentifier": "m1"}], set(IDS)),
])
def test_failed_ids__handler_answer__records_to_retry(answer, expected):
    # GIVEN a handler's return value / WHEN read as Lambda reads it / THEN these records come back;
    # a malformed answer or an unknown/empty id fails the whole batch
    assert failed_ids(answer, IDS) == expected


# --- batching window -------------------------------------------------------------------------------

class ScriptedSqs:
    """Answers receive_message from a script and records the waits it was asked for."""

    def __init__(self, answers: list[list[dict]]) -> None:
        self.answers = answers
        self.waits: list[int] = []

    def receive_message(self, **kwargs):
        self.waits.append(kwargs["WaitTimeSeconds"])
        return {"Messages": self.answers.pop(0)} if self.answers else {}

    def get_queue_url(self, **kwargs):
        return {"QueueUrl": "passed-through"}


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic(monkeypatch):
    fake = FakeMonotonic()
    monkeypatch.setattr(event_source.time, "monotonic", fake)
    return fake


def test_batching_window_client__batch_open__follow_up_waits_rest_of_window(monotonic):
    # GIVEN a 5 s window and a first receive that returns a message
    sqs = ScriptedSqs([[{"MessageId": "a"}], [{"MessageId": "b"}]])
    client = BatchingWindowClient(sqs, window_s=5)
    client.receive_message(WaitTimeSeconds=2)
    # WHEN the follow-up receive (asked with no wait) happens 1.5 s later
    monotonic.now += 1.5
    client.receive_message(WaitTimeSeconds=0)
    # THEN it long-polls for the rest of the window, in whole seconds rounded up
    assert sqs.waits == [2, 4]


def test_batching_window_client__window_closed__empty_without_a_request(monotonic):
    sqs = ScriptedSqs([[{"MessageId": "a"}], [{"MessageId": "late"}]])
    client = BatchingWindowClient(sqs, window_s=1)
    client.receive_message(WaitTimeSeconds=2)
    monotonic.now += 1.01
    # WHEN the window has closed THEN the batch is closed: no message, no request to SQS
    assert client.receive_message(WaitTimeSeconds=0) == {}
    assert sqs.waits == [2]


def test_batching_window_client__no_window__follow_up_does_not_wait(monotonic):
    sqs = ScriptedSqs([[{"MessageId": "a"}], []])
    client = BatchingWindowClient(sqs, window_s=0)
    client.receive_message(WaitTimeSeconds=2)
    client.receive_message(WaitTimeSeconds=0)
    # THEN without a window a batch is what one receive finds at once
    assert sqs.waits == [2, 0]


def test_batching_window_client__other_calls__pass_through():
    assert BatchingWindowClient(ScriptedSqs([]), 0).get_queue_url(QueueName="q") == {"QueueUrl": "passed-through"}
