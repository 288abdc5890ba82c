"""Delivery faults around the gateway on DynamoDB Local + moto SQS: events arriving out of order, a crash
between storing and enqueueing (the sweeper's job), and a queue message that can never succeed."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import EndpointConnectionError

from chalicelib import clients, clock
from chalicelib.callbacks import events, sweeper
from chalicelib.callbacks.tables import EventRecord
from chalicelib.queues import EVENTS
from chalicelib.routes import tp_apps as routes
from chalicelib.settings import settings
from rewardgate_ops.lambda_events import LocalLambdaContext, scheduled_event
from rewardgate_ops.sample_events import sample_event
from tests.callback_factory import event_id_of, fresh_id, platform_body, post


def run_sweeper() -> dict:
    return routes.sweep_received_events(scheduled_event("sweep-received-events"),
                                        LocalLambdaContext("sweep_received_events", 60))


def authorization_of(client, tp_app_id: str, app_id: str) -> dict:
    answer = client.http.get(f"/v1/tp-apps/{tp_app_id}/apps/{app_id}")
    assert answer.status_code == 200, answer.body
    return answer.json_body["authorization"]


@pytest.mark.parametrize("arrival", [("AUTHORIZED", "UNAUTHORIZED"), ("UNAUTHORIZED", "AUTHORIZED")])
def test_out_of_order__authorized_then_unauthorized_by_event_time__final_state_is_unauthorized(
        client, tp_app, queue, arrival):
    # GIVEN an app authorized at 12:00:00 and unauthorized at 12:00:05 (platform time)
    app_id = fresh_id("tt")
    times = {"AUTHORIZED": "2024-05-01 12:00:00", "UNAUTHORIZED": "2024-05-01 12:00:05"}
    bodies = {name: platform_body(tp_app, sample_event(name, AppId=app_id, TpAppId=tp_app.tp_app_id,
                                                       EventTime=times[name])) for name in times}
    # WHEN the two callbacks arrive, and are applied, in the given order
    for name in arrival:
        assert post(client, tp_app.tp_app_id, bodies[name], "auth").status_code == 200
        queue.drain()
    # THEN the app is unauthorized, as of the newer event, whatever the arrival order
    authorization = authorization_of(client, tp_app.tp_app_id, app_id)
    assert authorization["data"] == {"status": "UNAUTHORIZED"}
    assert authorization["event_id"] == event_id_of(bodies["UNAUTHORIZED"])
    assert authorization["event_time_ms"] == events.parse_platform_time(times["UNAUTHORIZED"])


def test_out_of_order__late_ticket_push__never_overwrites_a_newer_ticket(client, tp_app, queue):
    from chalicelib.callbacks.reads import current_ticket

    newer = sample_event("PUSH", Ticket="ticket-newer", CreateTime="2024-05-01 12:10:00")
    older = sample_event("PUSH", Ticket="ticket-older", CreateTime="2024-05-01 12:00:00")
    for event in (newer, older):
        assert post(client, tp_app.tp_app_id, platform_body(tp_app, event), "auth").status_code == 200
    queue.drain()
    assert current_ticket(tp_app.tp_app_id)["data"]["ticket"] == "ticket-newer"


class _SendsFail:
    """The real SQS client, except that sending fails as if the network dropped."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    def send_message(self, **_):
        raise EndpointConnectionError(endpoint_url="https://sqs.invalid")


def test_crash_between_store_and_enqueue__sweeper_reenqueues__applied_once(client, tp_app, queue, monkeypatch):
    # GIVEN the events queue cannot be reached when the callback arrives
    app_id = fresh_id("tt")
    body = platform_body(tp_app, sample_event("AUTHORIZED", AppId=app_id, TpAppId=tp_app.tp_app_id))
    event_id = event_id_of(body)
    real_sqs = clients.sqs()
    monkeypatch.setattr(clients, "sqs", lambda: _SendsFail(real_sqs))
    # WHEN it is posted
    response = post(client, tp_app.tp_app_id, body, "auth")
    monkeypatch.setattr(clients, "sqs", lambda: real_sqs)
    # THEN it is still acknowledged (it is durable), but nothing reached the worker
    assert (response.status_code, response.body) == (200, b"success")
    assert queue.drain() == 0
    assert EventRecord.get(event_id).status == "RECEIVED"
    # WHEN the sweeper runs before the SLA has passed THEN it leaves the event alone
    run_sweeper()
    queue.drain()
    assert queue.count(event_id) == 0
    # WHEN it runs after the SLA
    later = clock.now_ms() + (settings().received_sla_s + 1) * 1000
    monkeypatch.setattr(clock, "now_ms", lambda: later)
    run_sweeper()
    queue.drain()
    # THEN the event was re-enqueued once and applied
    assert queue.count(event_id) == 1
    record = EventRecord.get(event_id)
    assert (record.status, record.unapplied_bucket, record.due_at_ms) == ("APPLIED", None, None)
    assert authorization_of(client, tp_app.tp_app_id, app_id)["event_id"] == event_id
    # WHEN the sweeper runs again, much later THEN an applied event is never sent again
    monkeypatch.setattr(clock, "now_ms", lambda: later + 10 * 3600 * 1000)
    run_sweeper()
    queue.drain()
    assert queue.count(event_id) == 1


def test_sweeper__event_still_unapplied__backs_off_instead_of_resending_every_run(client, tp_app, queue, monkeypatch):
    # GIVEN an event stored without being enqueued, and a worker that is down (nobody drains the queue)
    real_sqs = clients.sqs()
    monkeypatch.setattr(clients, "sqs", lambda: _SendsFail(real_sqs))
    body = platform_body(tp_app, sample_event("PUSH"))
    assert post(client, tp_app.tp_app_id, body, "auth").status_code == 200
    monkeypatch.setattr(clients, "sqs", lambda: real_sqs)
    event_id = event_id_of(body)
    sla_ms = settings().received_sla_s * 1000
    start = clock.now_ms()
    # WHEN the sweeper runs at SLA+1s, again 1s later, and then after twice the SLA
    sent_at = []
    for offset in (sla_ms + 1000, sla_ms + 2000, sla_ms + 1000 + 2 * sla_ms):
        monkeypatch.setattr(clock, "now_ms", lambda at=start + offset: at)
        run_sweeper()
        sent_at.append(EventRecord.get(event_id).sweep_attempts)
    # THEN it re-enqueued at the first run, skipped the second (not due again yet), re-enqueued at the third
    assert sent_at == [1, 1, 2]
    queue.drain()
    assert queue.count(event_id) == 2
    assert EventRecord.get(event_id).status == "APPLIED"


def test_sweeper__next_due__doubles_and_caps_at_an_hour():
    assert [sweeper.next_due_ms(0, n, 120) // 1000 for n in range(7)] == [120, 240, 480, 960, 1920, 3600, 3600]


def take_from_dlq(sqs, bodies: set[str]) -> set[str]:
    """Remove the messages with these bodies from the events DLQ; return the bodies found there.

    Other messages are made visible again at once: the DLQ is shared with the rest of the session
    (reconciliation reports DLQ depths), so a test removes exactly what it put there and nothing else.
    """
    dlq_url = clients.queue_url(EVENTS.dlq_name)
    found: set[str] = set()
    for _ in range(20):
        messages = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        for message in messages:
            if message["Body"] in bodies:
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
                found.add(message["Body"])
            else:
                sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"],
                                              VisibilityTimeout=0)
        if found == bodies:
            break
    return found


def test_worker__message_for_an_event_that_does_not_exist__fails_until_it_reaches_the_dlq(queue):
    # GIVEN a queue message naming an event id that was never stored
    ghost = "0" * 64
    body = json.dumps({"event_id": ghost})
    queue.sqs.send_message(QueueUrl=queue.url, MessageBody=body)
    # WHEN the worker drains the queue (failed records come back at once)
    queue.drain()
    # THEN it was tried maxReceiveCount times and then moved to the dead-letter queue
    assert queue.count(ghost) == EVENTS.max_receive_count
    assert take_from_dlq(queue.sqs, {body}) == {body}


@pytest.mark.parametrize("body", ["not json", '{"id": "x"}', '{"event_id": "short"}'])
def test_worker__unreadable_message__poison_not_a_crash(queue, body):
    # GIVEN a message the worker cannot read  WHEN drained
    queue.sqs.send_message(QueueUrl=queue.url, MessageBody=body)
    delivered = queue.drain()
    # THEN it failed each delivery (no crash of the batch) and ended in the DLQ
    assert delivered == EVENTS.max_receive_count
    assert take_from_dlq(queue.sqs, {body}) == {body}
