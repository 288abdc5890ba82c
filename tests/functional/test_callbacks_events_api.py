"""`GET /v1/tp-apps/{tp_app_id}/events`: newest first, filtered by type, paged with a stable cursor."""

from __future__ import annotations

import base64
import itertools

import pytest

from chalicelib import clock
from chalicelib.routes import tp_apps as routes
from chalicelib.secrets import put_tp_app
from rewardgate_ops.sample_events import channel_of, sample_event
from tests.callback_factory import EventsQueue, event_id_of, fresh_id, new_credentials, platform_body, post


@pytest.fixture
def posted(client, monkeypatch):
    """A tp app with seven stored events received one second apart, and their ids oldest first."""
    credentials = new_credentials()
    put_tp_app(credentials)
    # Receive times one second apart make "newest first" a fact the test can check, not a tie.
    ticks = itertools.count(clock.now_ms(), 1000)
    monkeypatch.setattr(clock, "now_ms", lambda: next(ticks))
    names = ["PUSH", "AUTHORIZED", "MODIFY_APP_NAME", "PUSH", "MODIFY_APP_ICON", "PUSH", "UNAUTHORIZED"]
    ids = []
    app_id = fresh_id("tt")
    for name in names:
        event = (sample_event(name) if name == "PUSH"
                 else sample_event(name, AppId=app_id, TpAppId=credentials.tp_app_id))
        body = platform_body(credentials, event)
        response = post(client, credentials.tp_app_id, body, channel_of(name))
        assert response.status_code == 200, response.body
        ids.append((event_id_of(body), name))
    yield credentials, ids
    # Apply what was posted, so no event is left RECEIVED for other suites (reconciliation) to find.
    EventsQueue(routes.apply_callback_events).drain()


def _pages(client, tp_app_id: str, query: str) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        answer = client.http.get(f"/v1/tp-apps/{tp_app_id}/events?{query}{suffix}")
        assert answer.status_code == 200, answer.body
        pages.append(answer.json_body["items"])
        cursor = answer.json_body["next_cursor"]
        if cursor is None:
            return pages


def test_events_api__paged_by_three__newest_first_every_event_once(client, posted):
    # GIVEN seven events received one after another
    tp_app_id, ids = posted[0].tp_app_id, posted[1]
    # WHEN listed three at a time, following the cursor
    pages = _pages(client, tp_app_id, "limit=3")
    # THEN pages hold 3, 3 and 1 events, newest first, with no repeats and none missing
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [e["event_id"] for p in pages for e in p] == [i for i, _ in reversed(ids)]


def test_events_api__type_filter__only_that_type_newest_first(client, posted):
    tp_app_id, ids = posted[0].tp_app_id, posted[1]
    pages = _pages(client, tp_app_id, "type=PUSH&limit=2")
    assert [len(p) for p in pages] == [2, 1]
    assert [e["event_id"] for p in pages for e in p] == [i for i, name in reversed(ids) if name == "PUSH"]
    assert {e["event_type"] for p in pages for e in p} == {"PUSH"}


def test_events_api__exactly_full_last_page__no_cursor_to_an_empty_page(client, posted):
    tp_app_id = posted[0].tp_app_id
    answer = client.http.get(f"/v1/tp-apps/{tp_app_id}/events?limit=7").json_body
    assert (len(answer["items"]), answer["next_cursor"]) == (7, None)


def test_events_api__cursor__stable_when_newer_events_arrive(client, posted):
    # GIVEN the first page has been read
    credentials, ids = posted
    tp_app_id = credentials.tp_app_id
    first = client.http.get(f"/v1/tp-apps/{tp_app_id}/events?limit=3").json_body
    # WHEN a newer event arrives before the next page is read
    newer = platform_body(credentials, sample_event("PUSH"))
    assert post(client, tp_app_id, newer, "auth").status_code == 200
    second = client.http.get(f"/v1/tp-apps/{tp_app_id}/events?limit=3&cursor={first['next_cursor']}").json_body
    # THEN the next page continues exactly after the first page's last event
    assert [e["event_id"] for e in second["items"]] == [i for i, _ in reversed(ids)][3:6]
    # ... and the newer event heads a fresh listing
    assert client.http.get(f"/v1/tp-apps/{tp_app_id}/events?limit=1").json_body["items"][0]["event_id"] == (
        event_id_of(newer))


@pytest.mark.parametrize(("query", "field"), [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=abc", "limit"),
    # `str.isdigit` accepts superscripts that `int` refuses: this reached a 500 before
    ("limit=%C2%B2", "limit"), ("limit=%D9%A3", "limit"), ("limit=%205", "limit"), ("bogus=1", "bogus"),
    ("cursor=%%%", "cursor"), ("cursor=eyJhIjogMX0", "cursor"), ("type=no%20spaces", "type"),
    # a cursor of JSON nested deeper than the decoder's recursion limit: a RecursionError (500) before
    ("cursor=" + base64.urlsafe_b64encode(b"[" * 1500).decode(), "cursor"),
])
def test_events_api__bad_parameter__400_naming_it(client, posted, query, field):
    tp_app_id = posted[0].tp_app_id
    answer = client.http.get(f"/v1/tp-apps/{tp_app_id}/events?{query}")
    assert (answer.status_code, answer.json_body["code"], answer.json_body["field"]) == (400, "invalid_field", field)


def test_events_api__cursor_from_another_tp_app__400(client, posted):
    # GIVEN a cursor issued for another tp app's listing
    tp_app_id = posted[0].tp_app_id
    other = new_credentials()
    put_tp_app(other)
    for _ in range(2):
        assert post(client, other.tp_app_id, platform_body(other, sample_event("PUSH")), "auth").status_code == 200
    foreign = client.http.get(f"/v1/tp-apps/{other.tp_app_id}/events?limit=1").json_body["next_cursor"]
    assert foreign
    # WHEN it is used on this tp app's listing THEN it is refused, naming the cursor
    answer = client.http.get(f"/v1/tp-apps/{tp_app_id}/events?cursor={foreign}")
    assert (answer.status_code, answer.json_body["field"]) == (400, "cursor")


def test_events_api__cursor_of_the_unfiltered_listing_used_with_a_type__400(client, posted):
    tp_app_id = posted[0].tp_app_id
    cursor = client.http.get(f"/v1/tp-apps/{tp_app_id}/events?limit=1").json_body["next_cursor"]
    answer = client.http.get(f"/v1/tp-apps/{tp_app_id}/events?type=PUSH&cursor={cursor}")
    assert (answer.status_code, answer.json_body["field"]) == (400, "cursor")


def test_events_api__unknown_tp_app__404(client):
    answer = client.http.get(f"/v1/tp-apps/{fresh_id('tp')}/events")
    assert (answer.status_code, answer.json_body["code"]) == (404, "unknown_tp_app")


def test_events_api__known_tp_app_without_events__empty_page(client):
    credentials = new_credentials()
    put_tp_app(credentials)
    answer = client.http.get(f"/v1/tp-apps/{credentials.tp_app_id}/events")
    assert (answer.status_code, answer.json_body) == (200, {"items": [], "next_cursor": None})
