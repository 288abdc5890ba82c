"""Issue 24 item 6: the read API never hands out a tp app's credentials: stored callback payloads and app state
are served with authorization codes and component tickets redacted (everything else as stored)."""

from __future__ import annotations

from chalicelib.routes import tp_apps as routes
from rewardgate_ops.sample_events import channel_of, sample_event
from tests.callback_factory import EventsQueue, fresh_id, platform_body, post


def test_events_api__ticket_and_authorization_code__redacted_rest_as_stored(client, tp_app):
    # GIVEN a component ticket push and an authorization (with its authorization code), stored and applied
    app_id = fresh_id("tt")
    pushed = sample_event("PUSH")
    authorized = sample_event("AUTHORIZED", AppId=app_id, TpAppId=tp_app.tp_app_id)
    for event, name in ((pushed, "PUSH"), (authorized, "AUTHORIZED")):
        assert post(client, tp_app.tp_app_id, platform_body(tp_app, event), channel_of(name)).status_code == 200
    EventsQueue(routes.apply_callback_events).drain()
    # WHEN an operator lists the tp app's events and reads the app's state
    items = client.http.get(f"/v1/tp-apps/{tp_app.tp_app_id}/events").json_body["items"]
    state = client.http.get(f"/v1/tp-apps/{tp_app.tp_app_id}/apps/{app_id}").json_body
    payloads = {item["event_type"]: item["payload"] for item in items}
    # THEN the credentials are redacted and every other field is as the platform sent it
    assert payloads["PUSH"] == {**pushed, "Ticket": "[redacted]"}
    assert payloads["AUTHORIZED"] == {**authorized, "AuthorizationCode": "[redacted]"}
    assert state["authorization"]["data"]["authorization_code"] == "[redacted]"
    assert state["authorization"]["data"]["status"] == "AUTHORIZED"
    assert authorized["AuthorizationCode"] not in str(items) + str(state)
    assert pushed["Ticket"] not in str(items)


def test_credentials_route__one_event_unredacted__audited_and_only_for_its_tp_app(client, tp_app):
    from chalicelib import clock
    from chalicelib.audit import log as audit_log
    from chalicelib.secrets import put_tp_app
    from tests.callback_factory import event_id_of, new_credentials

    # GIVEN a stored ticket push
    since = clock.now_ms()
    pushed = sample_event("PUSH")
    body = platform_body(tp_app, pushed)
    assert post(client, tp_app.tp_app_id, body, channel_of("PUSH")).status_code == 200
    event_id = event_id_of(body)
    # WHEN a caller holding the credentials policy reads that event
    answer = client.http.get(f"/v1/tp-apps/{tp_app.tp_app_id}/events/{event_id}/credentials")
    # THEN it gets the payload as the platform sent it, and the read is in the audit log
    assert answer.status_code == 200, answer.body
    assert answer.json_body["payload"] == pushed and answer.json_body["event_id"] == event_id
    audited = list(audit_log.entries(since, action="callback.credentials.read"))
    assert [e["target"] for e in audited] == [{"tp_app_id": tp_app.tp_app_id, "event_id": event_id}]
    # AND the same event id under another tp app is not found (nothing served)
    other = new_credentials()
    put_tp_app(other)
    missing = client.http.get(f"/v1/tp-apps/{other.tp_app_id}/events/{event_id}/credentials")
    assert missing.status_code == 404 and missing.json_body["code"] == "not_found"
    EventsQueue(routes.apply_callback_events).drain()
