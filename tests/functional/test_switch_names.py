"""Per-scene grants switches name exactly one scene, whatever '.' the ids contain.

`grants:{activity_id}:{scene_id}` — ':' is not allowed in ids, so the name splits one way only. The former
`grants.{activity_id}.{scene_id}` (where `grants.a.b.c` meant both a/b.c and a.b/c) is refused on a write.
On DynamoDB Local and moto SQS through the Chalice test client.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import uid
from tests.problems import STATUS, TITLES
from tests.rewards_support import HOUR_MS, Campaign, call, orders_of, switch


def configure(client, activity_id: str, scene_id: str) -> Campaign:
    """An activity with one child open now and one cash scene, with the ids given."""
    now = int(time.time() * 1000)
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}", {"children": [
        {"sub_activity_id": "formal", "purpose": "formal", "starts_at_ms": now - HOUR_MS,
         "ends_at_ms": now + 24 * HOUR_MS}]})
    assert status == 200, body
    status, body = call(client, "PUT", f"/v1/admin/activities/{activity_id}/scenes/{scene_id}",
                        {"award_type": "cash", "order_cap": 500, "total": 10_000})
    assert status == 200, body
    return Campaign(activity_id, "formal", scene_id, "cash", 500)


@pytest.fixture
def twins(client) -> tuple[Campaign, Campaign]:
    """GIVEN activity X with scene `s.1` and activity `X.s` with scene `1`: their ids join to the same dotted text."""
    base = uid("act")
    return configure(client, base, "s.1"), configure(client, f"{base}.s", "1")


def test_scene_switch__off_for_one_of_two_scenes_whose_ids_join_alike__only_that_scene_refused(client, twins):
    one, other = twins
    name = f"grants:{one.activity_id}:{one.scene_id}"
    # WHEN grants are switched off for X / s.1
    with switch(client, name, {"enabled": False}):
        refused = call(client, "POST", "/v1/grants", one.grant_body("u1"))
        granted = call(client, "POST", "/v1/grants", other.grant_body("u1"))
    # THEN X / s.1 is refused naming its switch, and nothing is written there
    assert refused == (503, {"type": "urn:rewardgate:problem:switched_off", "title": TITLES["switched_off"],
                             "status": 503, "code": "switched_off",
                             "detail": f"grants are switched off ({name})", "switch": name})
    assert orders_of(one) == []
    # AND X.s / 1 still grants
    assert granted[0] == 202 and [o.order_id for o in orders_of(other)] == [granted[1]["order_id"]]


def test_put_switch__former_dotted_scene_name__422_naming_the_new_format_and_every_reading_nothing_stored(
        client, twins):
    one, other = twins
    old = f"grants.{one.activity_id}.{one.scene_id}"
    # WHEN the former name is set
    status, answer = call(client, "PUT", f"/v1/admin/switches/{old}", {"enabled": False})
    # THEN it is refused, naming the new format and both switches it could have meant
    readings = [f"grants:{one.activity_id}:{one.scene_id}", f"grants:{other.activity_id}:{other.scene_id}"]
    assert (status, answer) == (422, {
        "type": "urn:rewardgate:problem:switch_name_retired", "title": TITLES["switch_name_retired"],
        "status": STATUS["switch_name_retired"], "code": "switch_name_retired",
        "detail": f"switch name {old} is the retired grants.<activity>.<scene> form, ambiguous when ids contain "
                  f"'.'; use grants:<activity>:<scene>: {' or '.join(sorted(readings))}",
        "field": "name", "expected_format": "grants:<activity>:<scene>", "candidates": sorted(readings)})
    # AND nothing was stored: both scenes still grant
    assert old not in call(client, "GET", "/v1/admin/switches")[1]["switches"]
    assert call(client, "POST", "/v1/grants", one.grant_body("u2"))[0] == 202
    assert call(client, "POST", "/v1/grants", other.grant_body("u2"))[0] == 202
