"""Inputs that reached a 5xx (issue 18 item 8), and the rest of their classes: every opaque cursor and every
date parameter is validated at the edge, and bad ones get a 400 naming the field, with nothing written."""

from __future__ import annotations

import base64
import json

import pytest

from chalicelib.secrets import put_tp_app
from tests.callback_factory import new_credentials
from tests.play_support import make_app
from tests.problems import problem
from tests.rewards_support import call, make_campaign

NOT_OUR_CURSOR = "cursor: is not a cursor returned by this listing"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def flow_cursor(sort_key: str) -> str:
    """A flow cursor as a caller can forge one (the flow's cursor is the base64 of a sort key)."""
    return b64(sort_key.encode())


@pytest.fixture
def campaign(client):
    return make_campaign(client, total=1_000_000, order_cap=10_000)


@pytest.mark.parametrize("sort_key", [
    "0000000000000#" + "x" * 1100,  # longer than DynamoDB's 1 024-byte sort key: a 500 before
    "0000000000000#credit#" + "a" * 1100,
    "0000000000000#credit#a\x00b",  # control characters
    "0000000000000#nonsense#o1",  # no such entry kind
    "0000000000000#credit#",  # no id
])
def test_flow__forged_cursor__400_naming_the_cursor(client, campaign, sort_key):
    # WHEN a wallet's flow is read with a cursor that no listing issued
    status, body = call(client, "GET", f"/v1/wallets/u1/flow?activity_id={campaign.activity_id}"
                                       f"&cursor={flow_cursor(sort_key)}")
    # THEN 400 naming the cursor (not a 5xx)
    assert (status, body) == (400, problem("invalid_field", NOT_OUR_CURSOR, field="cursor"))


@pytest.mark.parametrize("typed", [
    {"event_id": {"N": "1"}, "tp_app_id": {"S": "{tp}"}, "list_sk": {"S": "x"}},  # a string key typed N: a 503
    {"event_id": {"S": "e"}, "tp_app_id": {"S": "{tp}"}, "list_sk": {"N": "12"}},
    {"event_id": {"S": "e" * 1100}, "tp_app_id": {"S": "{tp}"}, "list_sk": {"S": "x"}},  # over the key limit
    {"event_id": {"S": ""}, "tp_app_id": {"S": "{tp}"}, "list_sk": {"S": "x"}},  # empty key value
    {"event_id": {"S": "\ud800"}, "tp_app_id": {"S": "{tp}"}, "list_sk": {"S": "x"}},  # a lone surrogate
])
def test_events_api__cursor_key_of_the_wrong_type_or_size__400_naming_the_cursor(client, typed):
    # GIVEN a tp app
    credentials = new_credentials()
    put_tp_app(credentials)
    cursor = b64(json.dumps(typed).replace("{tp}", credentials.tp_app_id).encode())  # "\ud800" stays escaped
    # WHEN its events are listed with a cursor whose key is of the wrong type or size
    answer = client.http.get(f"/v1/tp-apps/{credentials.tp_app_id}/events?cursor={cursor}")
    # THEN 400 naming the cursor
    assert (answer.status_code, answer.json_body) == (400, problem("invalid_field", NOT_OUR_CURSOR, field="cursor"))


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1969-12-31"])
def test_settlement__day_outside_the_calendar_it_can_settle__400_naming_day(client, day):
    # GIVEN a play app WHEN its settlement is read for a day at the ends of the calendar
    app = make_app(client)
    status, body = call(client, "GET", f"/v1/play-apps/{app.app_id}/settlement?day={day}")
    # THEN 400 naming the day (not a 500)
    assert (status, body) == (400, problem("invalid_field", "day: must be a day from 1970-01-02 to 9999-12-30",
                                           field="day"))


@pytest.mark.parametrize("hour", ["0001-01-01T00", "9999-12-31T23", "1969-12-31T23"])
def test_reconciliation__hour_outside_the_calendar_it_can_reconcile__400_naming_hour(client, hour):
    # WHEN an hour at the ends of the calendar is read or run
    read = call(client, "GET", f"/v1/admin/reconciliations/{hour}")
    run = call(client, "POST", "/v1/admin/reconciliations", {"hour": hour})
    # THEN both answer 400 naming the hour (not a 500)
    expected = (400, problem("invalid_field", "hour: must be an hour from 1970-01-01T00 to 9999-12-30T23 (UTC)",
                             field="hour"))
    assert (read, run) == (expected, expected)
