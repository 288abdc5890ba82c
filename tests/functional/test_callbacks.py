"""The callback gateway end to end: HTTP in through the Chalice test client, the worker through the
events queue on moto, state out through the read API. DynamoDB Local underneath."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from chalicelib import process_state
from chalicelib.callbacks import events, reads
from chalicelib.callbacks.tables import AppStateItem, EventRecord
from chalicelib.secrets import put_tp_app
from rewardgate_ops.sample_events import EVENT_NAMES, channel_of, sample_event
from tests.callback_factory import (
    event_id_of,
    fresh_id,
    new_aes_key,
    new_credentials,
    now_s,
    platform_body,
    post,
)
from tests.problems import problem

REJECTED = problem('rejected')


def stored_events(tp_app_id: str) -> list[EventRecord]:
    return list(EventRecord.by_tp_app.query(tp_app_id))


def state_items(tp_app_id: str) -> list[AppStateItem]:
    return list(AppStateItem.query(tp_app_id))


def event_for(name: str, tp_app_id: str, app_id: str, **overrides) -> dict:
    if name == "PUSH":
        return sample_event(name, **overrides)
    return sample_event(name, AppId=app_id, TpAppId=tp_app_id, **overrides)


def assert_success(response) -> None:
    assert (response.status_code, response.body) == (200, b"success"), response.body
    assert response.headers["Content-Type"] == "text/plain"


# Where each event type lands in `GET /v1/tp-apps/{tp}/apps/{app}`, and what it must hold there.
def expected_state(name: str, event: dict) -> tuple[tuple[str, ...], dict]:
    results = {
        "MODIFY_APP_NAME": (("review", "name"), event.get("ModifyAppNameResults")),
        "APP_NAME_RESET_NOTIFICATION": (("review", "name_reset"),
                                        {"notification": event.get("AppNameResetNotification")}),
        "MODIFY_APP_INTRO": (("review", "intro"), event.get("ModifyAppIntroResults")),
        "MODIFY_APP_ICON": (("review", "icon"), event.get("ModifyAppIconResults")),
        "APPLY_VIDEO_CAPABILITY": (("review", "video_capability"), event.get("ApplyVideoCapabilityResults")),
        "APPLY_LIVE_CAPABILITY": (("review", "live_capability"), event.get("ApplyLiveCapabilityResults")),
        "APPLY_PHONE_NUMBER_CAPABILITY": (("review", "phone_number_capability"),
                                          event.get("ApplyPhoneNumberCapabilityResults")),
        "APPLY_SHARE_TEMPLATE": (("review", "share_template", "tpl7b2e4c9d1a"),
                                 event.get("ApplyShareTemplateResults")),
        "APPLY_CAPACITY": (("review", "capacity", "video_self_mount"), event.get("EventContent")),
        "SELT_MOUNT_BIND": (("review", "self_mount", "video_self_mount/xinghe_official"), event.get("EventContent")),
        "MODIFY_APP_CATEGORY": (("review", "category", "158,159,259"), event.get("ModifyAppCategoryResults", [{}])[-1]),
        "PACKAGE_AUDIT": (("review", "package_audit", "toutiao"), event.get("AuditResults", [{}])[-1]),
        "UNAUTHORIZED": (("authorization",), {"status": "UNAUTHORIZED"}),
    }
    if name in results:
        return results[name]
    at = events.parse_platform_time(event["EventTime"])
    assert name in ("AUTHORIZED", "UPDATE_AUTHORIZED"), name
    return ("authorization",), {"status": "AUTHORIZED", "authorization_code": event["AuthorizationCode"],
                                "authorization_code_expires_in_s": 3600,
                                "authorization_code_expires_at_ms": at + 3_600_000}


def dig(state: dict, path: tuple[str, ...]) -> dict:
    node = state
    for part in path:
        node = node[part]
    return node


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_callback__each_event_type__stored_applied_and_read_back(client, tp_app, queue, name):
    # GIVEN a platform event of this type, encrypted and signed by the test's own encoder
    app_id = fresh_id("tt")
    event = event_for(name, tp_app.tp_app_id, app_id)
    body = platform_body(tp_app, event)
    event_id = event_id_of(body)
    # WHEN the platform posts it to its endpoint and the worker drains the queue
    response = post(client, tp_app.tp_app_id, body, channel_of(name))
    queue.drain()
    # THEN it was acknowledged, handed to the worker once, and is listed as APPLIED with its payload
    assert_success(response)
    assert queue.count(event_id) == 1
    listing = client.http.get(f"/v1/tp-apps/{tp_app.tp_app_id}/events").json_body
    assert [(e["event_id"], e["event_type"], e["status"]) for e in listing["items"]] == [(event_id, name, "APPLIED")]
    # (credentials redacted on read: the component ticket and authorization codes)
    assert listing["items"][0]["payload"] == {
        k: "[redacted]" if k in ("Ticket", "AuthorizationCode") and v else v for k, v in event.items()}
    # ... and its effect is readable: the ticket for PUSH, the app's state for everything else
    time_field = "CreateTime" if name == "PUSH" else "EventTime"
    event_time_ms = events.parse_platform_time(event[time_field])
    if name == "PUSH":
        ticket = reads.current_ticket(tp_app.tp_app_id)
        assert ticket["data"] == {"ticket": event["Ticket"], "create_time": event["CreateTime"]}
        assert (ticket["event_id"], ticket["event_time_ms"]) == (event_id, event_time_ms)
        return
    answer = client.http.get(f"/v1/tp-apps/{tp_app.tp_app_id}/apps/{app_id}")
    assert answer.status_code == 200, answer.body
    state = answer.json_body
    path, data = expected_state(name, event)
    aspect = dig(state, path)
    # the read route redacts the authorization code (a credential); storage holds it as the platform sent it
    assert aspect["data"] == {k: "[redacted]" if k == "authorization_code" else v for k, v in data.items()}
    if "authorization_code" in data:
        stored = AppStateItem.get(tp_app.tp_app_id, f"{app_id}#authorization")
        assert json.loads(stored.data)["authorization_code"] == data["authorization_code"]
    assert (aspect["event_type"], aspect["event_id"], aspect["event_time_ms"]) == (name, event_id, event_time_ms)
    assert aspect["event_time"] == events.iso_time(event_time_ms)
    assert (state["tp_app_id"], state["app_id"]) == (tp_app.tp_app_id, app_id)
    if name == "AUTHORIZED":
        assert state["profile"]["data"] == {
            "app_name": event["AppName"], "app_icon": event["AppIcon"], "company_name": event["CompanyName"],
            "admin_email": "z***@xinghe-games.com", "admin_mobile": "138****5678",
        }
        assert state["profile"]["event_id"] == event_id


def test_callback__review_events_for_one_app__all_aspects_in_one_answer(client, tp_app, queue):
    # GIVEN one app that went through authorization and several reviews
    app_id = fresh_id("tt")
    names = ["AUTHORIZED", "MODIFY_APP_NAME", "PACKAGE_AUDIT", "APPLY_SHARE_TEMPLATE", "MODIFY_APP_CATEGORY"]
    for name in names:
        assert_success(post(client, tp_app.tp_app_id, platform_body(tp_app, event_for(name, tp_app.tp_app_id, app_id)),
                            channel_of(name)))
    # WHEN the worker applies them
    queue.drain()
    state = client.http.get(f"/v1/tp-apps/{tp_app.tp_app_id}/apps/{app_id}").json_body
    # THEN the read API shows every aspect, keyed per host, template and category
    assert state["authorization"]["data"]["status"] == "AUTHORIZED"
    assert sorted(state["review"]) == ["category", "name", "package_audit", "share_template"]
    assert sorted(state["review"]["package_audit"]) == ["douyin", "toutiao"]
    assert sorted(state["review"]["category"]) == ["158,159,259", "188,189,190"]
    assert list(state["review"]["share_template"]) == ["tpl7b2e4c9d1a"]


def test_callback__same_callback_twice__one_event_one_message(client, tp_app, queue):
    # GIVEN a callback the platform retries (same body)
    body = platform_body(tp_app, event_for("AUTHORIZED", tp_app.tp_app_id, fresh_id("tt")))
    # WHEN it arrives twice
    first, second = post(client, tp_app.tp_app_id, body, "auth"), post(client, tp_app.tp_app_id, body, "auth")
    queue.drain()
    # THEN both are acknowledged, one event is stored, and the worker saw it once
    assert_success(first)
    assert_success(second)
    assert [e.event_id for e in stored_events(tp_app.tp_app_id)] == [event_id_of(body)]
    assert queue.count(event_id_of(body)) == 1


@pytest.mark.parametrize("content_type", [None, "text/plain", "text/plain; charset=utf-8",
                                          "application/json; charset=utf-8"])
def test_callback__content_types_platforms_send__accepted(client, tp_app, queue, content_type):
    body = platform_body(tp_app, sample_event("PUSH"))
    response = post(client, tp_app.tp_app_id, json.dumps(body).encode(), "auth", content_type=content_type)
    assert_success(response)


def test_callback__timestamp_and_nonce_as_json_numbers__signed_text_verified(client, tp_app, queue):
    # GIVEN the platform sends TimeStamp and Nonce as JSON numbers (signing their decimal text)
    body = platform_body(tp_app, sample_event("PUSH"), timestamp=now_s(), nonce=482913)
    raw = json.dumps(body).encode()
    assert b'"TimeStamp": ' + str(body["TimeStamp"]).encode() in raw
    # WHEN / THEN it is accepted and stored
    assert_success(post(client, tp_app.tp_app_id, raw, "auth"))
    assert len(stored_events(tp_app.tp_app_id)) == 1


def test_callback__unknown_event_type__stored_as_unknown_and_visible(client, tp_app, queue):
    # GIVEN an event type this gateway does not know yet
    event = {"AppId": fresh_id("tt"), "TpAppId": tp_app.tp_app_id, "EventTime": "2024-05-01 12:00:00",
             "Event": "BRAND_NEW_THING", "EventContent": {"x": 1}}
    body = platform_body(tp_app, event)
    # WHEN it is posted and the worker runs
    assert_success(post(client, tp_app.tp_app_id, body))
    delivered = queue.drain()
    # THEN it was handed over once (no retry loop) and is listed as UNKNOWN with its payload
    assert (delivered, queue.count(event_id_of(body))) == (1, 1)
    (listed,) = client.http.get(f"/v1/tp-apps/{tp_app.tp_app_id}/events?type=BRAND_NEW_THING").json_body["items"]
    assert (listed["status"], listed["payload"]) == ("UNKNOWN", event)
    assert "BRAND_NEW_THING" in listed["note"]
    assert state_items(tp_app.tp_app_id) == []


def test_events_replay__handler_deployed_after_unknown_events__applied_once_newest_state_wins(
        client, tp_app, queue, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from rewardgate_ops.cli import rewardgate

    # GIVEN two events of a type nobody handled yet, stored UNKNOWN (the newer one posted first)
    app_id = fresh_id("tt")
    older, newer = ({"AppId": app_id, "TpAppId": tp_app.tp_app_id, "EventTime": at, "Event": "APPLY_GAME_CAPABILITY",
                     "ApplyGameCapabilityResults": {"status": status}}
                    for at, status in (("2024-05-01 12:00:00", "AUDITING"), ("2024-05-01 13:00:00", "PASS")))
    for event in (newer, older):
        assert_success(post(client, tp_app.tp_app_id, platform_body(tp_app, event)))
    queue.drain()
    assert {r.status for r in stored_events(tp_app.tp_app_id)} == {"UNKNOWN"}
    # WHEN its handler is deployed and the operator replays that type
    monkeypatch.setitem(events.HANDLERS, "APPLY_GAME_CAPABILITY",
                        events._single_result("game_capability", "ApplyGameCapabilityResults"))
    replay = CliRunner().invoke(rewardgate, ["--state-dir", str(tmp_path), "events", "replay",
                                             "--tp-app-id", tp_app.tp_app_id, "--type", "APPLY_GAME_CAPABILITY",
                                             "--output", "json"])
    delivered = queue.drain()
    # THEN both are re-queued once and applied; the state holds the newer result, whatever the order
    assert replay.exit_code == 0, replay.output
    assert json.loads(replay.stdout) == {"tp_app_id": tp_app.tp_app_id, "event_type": "APPLY_GAME_CAPABILITY",
                                         "examined": 2, "reopened": 2, "send_failed": 0}
    assert delivered == 2
    assert {(r.status, r.unapplied_bucket, r.note) for r in stored_events(tp_app.tp_app_id)} == {
        ("APPLIED", None, None)}
    state = client.http.get(f"/v1/tp-apps/{tp_app.tp_app_id}/apps/{app_id}").json_body
    game = state["review"]["game_capability"]
    assert (game["data"], game["event_time"]) == ({"status": "PASS"}, "2024-05-01T13:00:00+08:00")
    # AND a second replay finds nothing left to do
    again = CliRunner().invoke(rewardgate, ["--state-dir", str(tmp_path), "events", "replay",
                                            "--tp-app-id", tp_app.tp_app_id, "--type", "APPLY_GAME_CAPABILITY",
                                            "--output", "json"])
    assert json.loads(again.stdout)["reopened"] == 0
    assert queue.drain() == 0


def test_events_replay__bad_event_type__usage_error_names_it(tmp_path):
    from click.testing import CliRunner

    from rewardgate_ops.cli import rewardgate

    result = CliRunner().invoke(rewardgate, ["--state-dir", str(tmp_path), "events", "replay",
                                             "--tp-app-id", "tt1", "--type", "NOT A TYPE"])
    assert result.exit_code == 2
    assert "Invalid value for '--type': must be 1-64 characters" in result.output


def test_callback__genuine_but_malformed_event__marked_malformed_not_retried(client, tp_app, queue):
    event = sample_event("AUTHORIZED", AppId=fresh_id("tt"), TpAppId=tp_app.tp_app_id, EventTime="yesterday")
    body = platform_body(tp_app, event)
    assert_success(post(client, tp_app.tp_app_id, body, "auth"))
    queue.drain()
    assert queue.count(event_id_of(body)) == 1
    (record,) = stored_events(tp_app.tp_app_id)
    assert (record.status, record.unapplied_bucket) == ("MALFORMED", None)
    assert "event time" in record.note


def test_callback__key_rotation__old_key_works_while_previous_then_stops(client, tp_app, queue):
    # GIVEN the tp app rotated its EncodingAESKey, keeping the old one as previous
    old_key = tp_app.aes_key
    rotated = replace(tp_app, aes_key=new_aes_key(), previous_aes_key=old_key)
    put_tp_app(rotated)
    # WHEN the platform still encrypts with the old key THEN the callback is accepted
    on_old_key = platform_body(rotated, sample_event("PUSH"), aes_key=old_key)
    assert_success(post(client, tp_app.tp_app_id, on_old_key, "auth"))
    # WHEN the previous key is removed THEN an old-key callback gets the generic rejection and is not stored
    put_tp_app(replace(rotated, previous_aes_key=None))
    late = platform_body(rotated, sample_event("PUSH"), aes_key=old_key)
    response = post(client, tp_app.tp_app_id, late, "auth")
    assert (response.status_code, response.json_body) == (403, REJECTED)
    assert event_id_of(late) not in {e.event_id for e in stored_events(tp_app.tp_app_id)}
    # ... while the new key keeps working
    assert_success(post(client, tp_app.tp_app_id, platform_body(rotated, sample_event("PUSH")), "auth"))
    assert len(stored_events(tp_app.tp_app_id)) == 2


def _bad_inputs(tp):
    """(case, body bytes, path tp app id, expected status, expected JSON body) for each refused request."""
    good = platform_body(tp, sample_event("PUSH"))

    def without(field):
        return json.dumps({k: v for k, v in good.items() if k != field}).encode()

    cases = [
        ("oversized", json.dumps({**good, "Nonce": "x" * 65536}).encode(), tp.tp_app_id, 413,
         problem('payload_too_large', 'request body exceeds 65536 bytes', limit_bytes=65536)),
        ("non_json", b"TimeStamp=1&Nonce=2", tp.tp_app_id, 400,
         problem('invalid_json', 'request body is not valid JSON')),
        ("json_array", b"[]", tp.tp_app_id, 400,
         problem('invalid_json', 'request body must be a JSON object')),
        ("empty", b"", tp.tp_app_id, 400,
         problem('invalid_json', 'request body is empty; expected a JSON object')),
        ("nested_10000", b"[" * 10_000 + b"]" * 10_000, tp.tp_app_id, 400,
         problem('invalid_json', 'request body is nested too deeply')),
        ("boolean_timestamp", json.dumps({**good, "TimeStamp": True}).encode(), tp.tp_app_id, 400,
         problem('invalid_field', 'TimeStamp: must be a string or a number', field='TimeStamp')),
        # an unknown tp app is answered exactly like a forged callback: no way to enumerate tp apps
        ("unknown_tp_app", json.dumps(good).encode(), fresh_id("tp"), 403, REJECTED),
        ("stale_timestamp", json.dumps(platform_body(tp, sample_event("PUSH"), timestamp=str(now_s() - 301))).encode(),
         tp.tp_app_id, 403, REJECTED),
        # well past the +300 s window: the cases are built before the test posts them, and a second or more can
        # pass in between on a busy machine (at +301, a 1 s delay put the time back inside the window: 200)
        ("future_timestamp", json.dumps(platform_body(tp, sample_event("PUSH"), timestamp=str(now_s() + 600))).encode(),
         tp.tp_app_id, 403, REJECTED),
        ("forged_signature", json.dumps({**good, "MsgSignature": "0" * 40}).encode(), tp.tp_app_id, 403, REJECTED),
        ("wrong_key", json.dumps(platform_body(tp, sample_event("PUSH"), aes_key=new_aes_key())).encode(),
         tp.tp_app_id, 403, REJECTED),
    ]
    for field in ("TimeStamp", "Nonce", "Encrypt", "MsgSignature"):
        cases.append((f"missing_{field}", without(field), tp.tp_app_id, 400,
                      problem('invalid_field', f'{field}: is required', field=field)))
    return cases


BAD_CASES = [c[0] for c in _bad_inputs(new_credentials())]


@pytest.mark.parametrize("case", BAD_CASES)
def test_callback__bad_input__exact_status_and_body_and_nothing_written(client, tp_app, queue, case):
    # GIVEN one refused request shape
    _, raw, path_tp, status, expected = next(c for c in _bad_inputs(tp_app) if c[0] == case)
    # WHEN it is posted
    response = post(client, path_tp, raw, "events")
    delivered = queue.drain()
    # THEN the answer is exactly the expected status and body
    assert (response.status_code, response.json_body) == (status, expected)
    # ... and nothing was stored, enqueued or applied
    assert stored_events(tp_app.tp_app_id) == [] and stored_events(path_tp) == []
    assert delivered == 0
    assert state_items(tp_app.tp_app_id) == []


def test_callback__rejections__indistinguishable_to_the_caller(client, tp_app, queue):
    # GIVEN an unknown tp app id, a stale, a forged and a wrong-key callback
    cases = {c[0]: (c[2], c[1]) for c in _bad_inputs(tp_app) if c[3] == 403}
    assert {"unknown_tp_app", "forged_signature"} <= set(cases)
    # WHEN each is posted
    answers = {case: post(client, path_tp, raw) for case, (path_tp, raw) in cases.items()}
    # THEN status, content type and body are identical across them
    shapes = {(a.status_code, a.body, a.headers.get("Content-Type")) for a in answers.values()}
    assert shapes == {(403, json.dumps(REJECTED, separators=(",", ":")).encode(), "application/problem+json")}


def test_callback__tp_app_id_that_can_never_exist__the_same_rejection(client, queue):
    response = post(client, "not-valid-because-it-is-way-too-long-" + "x" * 64, b'{"TimeStamp":"1","Nonce":"1",'
                    b'"Encrypt":"a","MsgSignature":"b"}')
    assert (response.status_code, response.json_body) == (403, REJECTED)


def test_app_state__app_without_state__404_naming_app(client, tp_app):
    app_id = fresh_id("tt")
    response = client.http.get(f"/v1/tp-apps/{tp_app.tp_app_id}/apps/{app_id}")
    assert (response.status_code, response.json_body) == (
        404, problem('not_found', 'no state for this app', app_id=app_id))


def test_app_state__unknown_tp_app__404(client):
    response = client.http.get(f"/v1/tp-apps/{fresh_id('tp')}/apps/{fresh_id('tt')}")
    assert (response.status_code, response.json_body["code"]) == (404, "unknown_tp_app")


def test_app_state__invalid_app_id__400_naming_it(client, tp_app):
    response = client.http.get(f"/v1/tp-apps/{tp_app.tp_app_id}/apps/bad%23id")
    assert (response.status_code, response.json_body["field"]) == (400, "app_id")


def test_callback__flood_of_forged_tp_app_ids__bounded_secret_reads_and_bounded_memory(client, queue, monkeypatch):
    # each forged tp app id cost one billed Secrets Manager read and a cache entry never evicted
    import botocore.client

    from chalicelib import secrets

    process_state.reset()
    monkeypatch.setattr(secrets, "MISS_CACHE_MAX", 50)
    # a stopped clock: the budget does not refill during the flood, so the bound is exact
    monkeypatch.setattr(secrets, "_budget", secrets._LookupBudget(secrets.LOOKUPS_PER_S, secrets.LOOKUP_BURST,
                                                                   clock=lambda: 0.0))
    reads = []
    original = botocore.client.BaseClient._make_api_call

    def spy(self, operation_name, api_params):
        if operation_name == "GetSecretValue":
            reads.append(api_params["SecretId"])
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", spy)
    body = b'{"TimeStamp":"1","Nonce":"1","Encrypt":"a","MsgSignature":"b"}'
    # WHEN 300 callbacks arrive, each for a different made-up tp app id
    answers = {(r.status_code, r.body) for r in (post(client, fresh_id("tp"), body) for _ in range(300))}
    # THEN every one got the same rejection, at most the lookup burst reached Secrets Manager, and the
    # memory of unknown ids stayed within its bound
    assert answers == {(403, json.dumps(REJECTED, separators=(",", ":")).encode())}
    print(f"forged ids=300 secret reads={len(reads)} remembered misses={secrets.miss_cache_size()}")
    assert len(reads) == secrets.LOOKUP_BURST
    assert secrets.miss_cache_size() <= 50
    process_state.reset()
