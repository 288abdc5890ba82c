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
