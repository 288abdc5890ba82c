"""The local event-source loop against real moto queues: per-record failures, redelivery, DLQ, window."""

from __future__ import annotations

import json
import sys
import threading
import time
import types
from collections import Counter

import boto3
import pytest
from chalice import Blueprint, Chalice

from rewardgate_ops.event_source import SqsWorker, start_worker_thread, worker_for
from tests.conftest import uid

MAX_RECEIVES = 2


@pytest.fixture
def sqs():
    return boto3.client("sqs")


def create_queue(sqs, visibility_s: int) -> types.SimpleNamespace:
    name = uid("loop")
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": str(visibility_s),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)}),
    })["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return types.SimpleNamespace(name=name, url=url, arn=arn, dlq_url=dlq_url)


@pytest.fixture
def queue(sqs):
    """A dedicated queue (1 s visibility, DLQ after 2 receives), so failures come back quickly."""
    created = create_queue(sqs, visibility_s=1)
    yield created
    sqs.delete_queue(QueueUrl=created.url)
    sqs.delete_queue(QueueUrl=created.dlq_url)


@pytest.fixture
def slow_queue(sqs):
    """A queue whose visibility timeout outlasts a batching window, as AWS requires of a mapping."""
    created = create_queue(sqs, visibility_s=30)
    yield created
    sqs.delete_queue(QueueUrl=created.url)
    sqs.delete_queue(QueueUrl=created.dlq_url)


@pytest.fixture
def running():
    """Start worker threads; stop and join them whatever the test's outcome."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(worker: SqsWorker, sqs) -> threading.Thread:
        thread = start_worker_thread(worker, sqs, stop)
        threads.append(thread)
        return thread

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(t.is_alive() for t in threads), "a worker thread did not stop"


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.1)


def drain(sqs, url: str) -> list[dict]:
    messages = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return messages
        messages.extend(got)


def worker(queue, handler, batch_size: int = 10, window_s: float = 0) -> SqsWorker:
    return SqsWorker(name="test-worker", handler=handler, queue_name=queue.name, queue_url=queue.url,
                     queue_arn=queue.arn, batch_size=batch_size, batching_window_s=window_s, poll_wait_s=1)


def test_worker__some_records_fail__successes_deleted_failures_redelivered_then_dead_lettered(sqs, queue, running):
    # GIVEN six messages, and a handler that reports every odd-numbered one as failed
    sqs.send_message_batch(QueueUrl=queue.url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(6)])
    invocations: list[list[dict]] = []
    lock = threading.Lock()

    def handler(event, context):
        with lock:
            invocations.append(event["Records"])
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]
                                      if int(r["body"]) % 2]}

    # WHEN the event-source loop runs until the odd ones have reached the DLQ
    running(worker(queue, handler), sqs)
    dead: list[dict] = []
    wait_until(lambda: len(dead.extend(drain(sqs, queue.dlq_url)) or dead) >= 3, 30, "3 messages in the DLQ")

    # THEN every event carried distinct messageIds with the real SQS record shape
    for records in invocations:
        assert len({r["messageId"] for r in records}) == len(records)
        assert all(r["eventSource"] == "aws:sqs" and r["eventSourceARN"] == queue.arn for r in records)
    seen = Counter(r["body"] for records in invocations for r in records)
    # AND the successes were handled once (deleted), the failures exactly maxReceiveCount times
    assert {b: seen[b] for b in "024"} == {"0": 1, "2": 1, "4": 1}
    assert {b: seen[b] for b in "135"} == {"1": MAX_RECEIVES, "3": MAX_RECEIVES, "5": MAX_RECEIVES}
    # AND a redelivered failure keeps its messageId while its receive count grows
    attempts = [(r["messageId"], r["attributes"]["ApproximateReceiveCount"])
                for records in invocations for r in records if r["body"] == "1"]
    assert len({message_id for message_id, _ in attempts}) == 1
    assert [count for _, count in attempts] == ["1", "2"]
    # AND exactly the failures are in the DLQ, and nothing is left in the queue
    assert sorted(m["Body"] for m in dead) == ["1", "3", "5"]
    assert drain(sqs, queue.url) == []


def test_worker__handler_raises__batch_retried_and_loop_survives(sqs, queue, running, caplog):
    # GIVEN a handler that raises on its first invocation only
    calls: list[list[str]] = []

    def handler(event, context):
        calls.append(sorted(r["body"] for r in event["Records"]))
        if len(calls) == 1:
            raise RuntimeError("worker bug")
        return None

    sqs.send_message_batch(QueueUrl=queue.url, Entries=[{"Id": "a", "MessageBody": "a"},
                                                         {"Id": "b", "MessageBody": "b"}])
    # WHEN the loop runs
    thread = running(worker(queue, handler), sqs)
    wait_until(lambda: ["a", "b"] in calls[1:], 15, "the batch to be delivered again")
    # THEN the whole batch came back after the visibility timeout and was handled; the thread lives on
    assert calls[0] == ["a", "b"]
    assert thread.is_alive()
    wait_until(lambda: drain(sqs, queue.url) == [], 5, "the queue to be empty")
    # AND a later message is still processed by the same loop
    sqs.send_message(QueueUrl=queue.url, MessageBody="c")
    wait_until(lambda: ["c"] in calls, 10, "a later message")


def test_worker__sqs_unreachable__logged_and_retried_not_fatal(queue, running, caplog):
    # GIVEN an SQS client that fails every call (a stopped moto)
    class Broken:
        calls = 0

        def receive_message(self, **kwargs):
            Broken.calls += 1
            raise ConnectionError("moto is down")

    # WHEN the loop runs for a while
    thread = running(worker(queue, lambda e, c: None), Broken())
    wait_until(lambda: Broken.calls >= 2, 10, "a retry after the failure")
    # THEN it logged the failure, backed off, retried, and is still running
    assert thread.is_alive()
    assert any("polling" in r.getMessage() and r.exc_info for r in caplog.records)


def test_worker__batching_window__gathers_messages_arriving_within_it(sqs, slow_queue, running):
    # GIVEN a worker with a 2 s batching window, and one message now and two more 0.5 s later
    batches: list[list[str]] = []

    running(worker(slow_queue, lambda e, c: batches.append(sorted(r["body"] for r in e["Records"])),
                   batch_size=5, window_s=2), sqs)
    time.sleep(0.3)  # the worker is long-polling
    sqs.send_message(QueueUrl=slow_queue.url, MessageBody="first")
    time.sleep(0.5)
    sqs.send_message_batch(QueueUrl=slow_queue.url, Entries=[{"Id": "2", "MessageBody": "second"},
                                                         {"Id": "3", "MessageBody": "third"}])
    # WHEN the window closes
    wait_until(lambda: batches, 10, "a batch")
    # THEN all three came in one invocation
    assert batches == [["first", "second", "third"]]


def test_worker__no_batching_window__invokes_with_what_is_there(sqs, slow_queue, running):
    # GIVEN the same arrivals and no batching window
    batches: list[list[str]] = []
    running(worker(slow_queue, lambda e, c: batches.append(sorted(r["body"] for r in e["Records"])), batch_size=5), sqs)
    time.sleep(0.3)
    sqs.send_message(QueueUrl=slow_queue.url, MessageBody="first")
    time.sleep(0.5)
    sqs.send_message_batch(QueueUrl=slow_queue.url, Entries=[{"Id": "2", "MessageBody": "second"},
                                                         {"Id": "3", "MessageBody": "third"}])
    wait_until(lambda: sum(map(len, batches)) == 3, 10, "three records")
    # THEN the first message was delivered on its own, without waiting for the others
    assert batches == [["first"], ["second", "third"]]


def test_worker_for__chalice_sqs_config__handler_and_mapping_settings_from_the_decorator(sqs, queue):
    # GIVEN a blueprint worker declared as app.py declares them, on the test queue
    module = types.ModuleType(uid("rg_worker_mod"))
    bp = Blueprint(module.__name__)
    received: list[str] = []

    @bp.on_sqs_message(queue=queue.name, batch_size=3, maximum_batching_window_in_seconds=1)
    def consume(event):
        received.extend(record.body for record in event)

    module.consume = consume
    sys.modules[module.__name__] = module
    try:
        app = Chalice(app_name="rg-test")
        app.register_blueprint(bp)
        # WHEN the local stack builds its worker from the app's event source
        built = worker_for(app.event_sources[0], sqs, {queue.name: 7})
        sqs.send_message(QueueUrl=queue.url, MessageBody="hello")
        delivery = built.poll_once(sqs)
    finally:
        del sys.modules[module.__name__]
    # THEN it drains that queue with the decorator's settings and the user function gets the records
    assert (built.queue_url, built.queue_arn) == (queue.url, queue.arn)
    assert (built.batch_size, built.batching_window_s, built.timeout_s) == (3, 1, 7)
    assert built.handler_string == f"{module.__name__}.consume"
    assert received == ["hello"]
    assert (delivery.received, delivery.succeeded) == (1, 1)
