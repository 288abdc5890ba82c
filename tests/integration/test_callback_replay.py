"""Replays and races on DynamoDB Local: the same callback many times at once, events applied concurrently
in random order. Exactly one stored event, one application, and state that follows event time."""

from __future__ import annotations

import json
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.callbacks import apply, events
from chalicelib.callbacks.tables import AppStateItem, EventRecord
from rewardgate_ops.sample_events import sample_event
from tests.callback_factory import event_id_of, fresh_id, platform_body, post

T0_MS = events.parse_platform_time("2024-05-01 12:00:00")


@pytest.fixture
def writes(monkeypatch):
    """Counts state items actually written (an `apply_update` that returned True), per (event id, item)."""
    counted: dict[tuple[str, str], int] = {}
    lock = threading.Lock()
    real = apply.apply_update

    def counting(tp_app_id, update, event_id, event_type, now_ms):
        written = real(tp_app_id, update, event_id, event_type, now_ms)
        if written:
            with lock:
                key = (event_id, update.item_key)
                counted[key] = counted.get(key, 0) + 1
        return written

    monkeypatch.setattr(apply, "apply_update", counting)
    return counted


def _concurrently(count: int, action) -> list:
    """Run `action()` `count` times on as many threads, all released at the same moment."""
    barrier = threading.Barrier(count)

    def run():
        barrier.wait()
        return action()

    # chalice.test swaps os.environ per request and restores whatever it saw, so overlapping requests
    # can leave a stale copy behind; put the real mapping back afterwards.
    environ = os.environ
    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            return list(pool.map(lambda _: run(), range(count)))
    finally:
        os.environ = environ  # noqa: B003 - restoring the very object chalice.test replaced


def test_replay__same_callback_50_times_at_once__one_event_one_application_all_success(
        client, tp_app, queue, writes):
    # GIVEN one genuine AUTHORIZED callback
    app_id = fresh_id("tt")
    body = platform_body(tp_app, sample_event("AUTHORIZED", AppId=app_id, TpAppId=tp_app.tp_app_id))
    event_id = event_id_of(body)
    # WHEN the platform (or an attacker replaying it) sends it 50 times at the same moment
    # (identical requests, so the Chalice app's shared `current_request` cannot mix them up)
    answers = _concurrently(50, lambda: post(client, tp_app.tp_app_id, body, "auth"))
    queue.drain()
    # ... and SQS delivers the one message twice more for good measure
    for _ in range(2):
        queue.sqs.send_message(QueueUrl=queue.url, MessageBody=f'{{"event_id": "{event_id}"}}')
    queue.drain()
    # THEN every answer is success, one event is stored, it was enqueued once, and applied once
    successes = sum(1 for a in answers if (a.status_code, a.body) == (200, b"success"))
    stored = list(EventRecord.by_tp_app.query(tp_app.tp_app_id))
    applied = writes.get((event_id, f"{app_id}#authorization"), 0)
    print(f"\nstored={len(stored)} enqueued={queue.count(event_id) - 2} applied={applied} "
          f"answers={successes}/{len(answers)} success")
    assert successes == 50
    assert [e.event_id for e in stored] == [event_id]
    assert queue.count(event_id) == 3  # one from the gateway, two injected redeliveries
    assert writes == {(event_id, f"{app_id}#authorization"): 1, (event_id, f"{app_id}#profile"): 1}
    state = client.http.get(f"/v1/tp-apps/{tp_app.tp_app_id}/apps/{app_id}").json_body
    assert (state["authorization"]["event_id"], state["authorization"]["data"]["status"]) == (event_id, "AUTHORIZED")


def test_replay__authorization_events_applied_concurrently_in_random_order__newest_wins(
        client, tp_app, queue, writes):
    # GIVEN 24 stored authorization events for one app, one second apart, alternating AUTHORIZED and
    # UNAUTHORIZED, then AUTHORIZED and finally UPDATE_AUTHORIZED at the newest time
    app_id = fresh_id("tt")
    names = ["AUTHORIZED", "UNAUTHORIZED"] * 11 + ["AUTHORIZED", "UPDATE_AUTHORIZED"]
    ids = []
    for second, name in enumerate(names):
        event = sample_event(name, AppId=app_id, TpAppId=tp_app.tp_app_id,
                             EventTime=events.format_platform_time(T0_MS + second * 1000))
        body = platform_body(tp_app, event)
        assert post(client, tp_app.tp_app_id, body, "auth").status_code == 200
        ids.append(event_id_of(body))
    assert queue.discard() == 24  # the worker is played by the threads below instead
    # WHEN 16 threads apply them in random order, each event twice (duplicate deliveries, some at once)
    order = ids * 2
    random.Random(7).shuffle(order)
    pending = iter(order)
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                event_id = next(pending, None)
            if event_id is None:
                return
            apply.apply_event(event_id, T0_MS)

    _concurrently(16, worker)
    # THEN no event wrote any item twice, every event is finished
    assert writes and max(writes.values()) == 1
    assert {EventRecord.get(i).status for i in ids} == {"APPLIED"}
    # ... and each aspect holds its newest event: the code from UPDATE_AUTHORIZED, the profile from
    # the last AUTHORIZED
    authorization = AppStateItem.get(tp_app.tp_app_id, f"{app_id}#authorization")
    profile = AppStateItem.get(tp_app.tp_app_id, f"{app_id}#profile")
    assert (authorization.event_id, authorization.event_time_ms) == (ids[23], T0_MS + 23_000)
    assert (profile.event_id, profile.event_time_ms) == (ids[22], T0_MS + 22_000)
    assert (json.loads(authorization.data)["status"], json.loads(authorization.data)["authorization_code"]) == (
        "AUTHORIZED", "f1c9e2b7a6d54e3f9a8b7c6d5e4f3a21")
    # ... and the read route shows the state with the authorization code redacted (a credential in all but name)
    state = client.http.get(f"/v1/tp-apps/{tp_app.tp_app_id}/apps/{app_id}").json_body
    assert (state["authorization"]["data"]["status"], state["authorization"]["data"]["authorization_code"]) == (
        "AUTHORIZED", "[redacted]")
    assert state["profile"]["data"]["app_name"] == "星河答题"
