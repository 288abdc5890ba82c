"""Play apps and identity codes through the `/v1` routes: exact bodies, nothing changed on bad input."""

from __future__ import annotations

import pytest

from chalicelib import clock
from chalicelib.play import anchors, apps
from tests.play_support import clock_at, install_play_key, make_anchor, new_id
from tests.problems import invalid, problem
from tests.rewards_support import call

APP = {"name": "Dragon duel", "share_bp": 5000, "interactive_gift_ids": [31039, 31040], "sandbox": False}


@pytest.fixture(scope="module", autouse=True)
def _play_key(aws_stack):
    install_play_key()


def test_put_play_app__new__created_with_ratio_version_1_in_force_now(client, monkeypatch):
    with clock_at(monkeypatch, 1_900_000_000_000):
        app_id = new_id()
        status, body = call(client, "PUT", f"/v1/admin/play-apps/{app_id}", APP)
    assert status == 200, body
    assert body["ratios"] == [{"version": 1, "share_bp": 5000, "effective_from_ms": 1_900_000_000_000}]
    assert (body["share_bp"], body["ratio_version"], body["interactive_gift_ids"], body["sandbox"]) == (
        5000, 1, [31039, 31040], False)
    assert body["limits"]["events"] == 50 and body["limits"]["ban_base_s"] == 60
    assert body["access_key_id"] is None and body["security"] == {"offences": 0, "banned_until_ms": 0,
                                                                  "banned": False}


def test_put_play_app__share_changed__new_version_effective_after_the_cache_delay(client, monkeypatch):
    monkeypatch.setattr(apps, "ratio_delay_ms", lambda: 6000)
    app_id = new_id()
    with clock_at(monkeypatch, 1_900_000_000_000) as now:
        call(client, "PUT", f"/v1/admin/play-apps/{app_id}", APP)
        now[0] += 3_600_000
        status, body = call(client, "PUT", f"/v1/admin/play-apps/{app_id}", {**APP, "share_bp": 7000})
    assert status == 200
    assert [(r["version"], r["share_bp"], r["effective_from_ms"]) for r in body["ratios"]] == [
        (1, 5000, 1_900_000_000_000), (2, 7000, 1_900_003_600_000 + 6000)]
    # AND the same share again adds no version
    _, again = call(client, "PUT", f"/v1/admin/play-apps/{app_id}", {**APP, "share_bp": 7000, "name": "renamed"})
    assert len(again["ratios"]) == 2 and again["name"] == "renamed"


def test_put_play_app__every_bad_field__400_naming_each_and_nothing_stored(client):
    app_id = new_id()
    status, body = call(client, "PUT", f"/v1/admin/play-apps/{app_id}",
                        {"name": "x" * 65, "share_bp": -1, "interactive_gift_ids": "31039", "limits": {"start": 0}})
    assert (status, body) == (400, invalid(("name", "must be at most 64 characters"),
                                           ("share_bp", "must be at least 0"),
                                           ("interactive_gift_ids", "must be a list"),
                                           ("limits.start", "must be at least 1")))
    assert call(client, "GET", f"/v1/admin/play-apps/{app_id}")[0] == 404


def test_put_play_app__sandbox_flipped__409_and_unchanged(client):
    app_id = new_id()
    call(client, "PUT", f"/v1/admin/play-apps/{app_id}", APP)
    status, body = call(client, "PUT", f"/v1/admin/play-apps/{app_id}", {**APP, "sandbox": True, "share_bp": 1})
    assert (status, body) == (409, problem("sandbox_immutable", f"play app {app_id} is a live app; sandbox cannot "
                                           "change (create another app id)", app_id=app_id, sandbox=False))
    assert call(client, "GET", f"/v1/admin/play-apps/{app_id}")[1]["share_bp"] == 5000


@pytest.mark.parametrize("app_id", ["0", "-1", "abc", "007", str(2**53), "1" * 17])
def test_play_app_routes__malformed_id__400(client, app_id):
    status, body = call(client, "GET", f"/v1/admin/play-apps/{app_id}")
    assert (status, body) == (400, invalid(("app_id", "must be a positive integer up to 9007199254740991")))


def test_get_unknown_play_app__404_play_app_not_found(client):
    app_id = new_id()
    status, body = call(client, "GET", f"/v1/admin/play-apps/{app_id}")
    assert (status, body) == (404, problem("play_app_not_found", f"play app {app_id} is not configured",
                                           app_id=app_id))


def test_list_play_apps__includes_a_new_app(client):
    app_id = new_id()
    call(client, "PUT", f"/v1/admin/play-apps/{app_id}", APP)
    status, body = call(client, "GET", "/v1/admin/play-apps")
    assert status == 200 and app_id in [a["app_id"] for a in body["play_apps"]]


# --- identity codes -------------------------------------------------------------------------------------


def test_code__same_until_refreshed__then_old_one_no_longer_resolves(client):
    anchor = make_anchor(client)
    status, again = call(client, "POST", f"/v1/play/anchors/{anchor.anchor_id}/code", {"room_id": anchor.room_id})
    assert status == 200 and again == {"anchor_id": anchor.anchor_id, "room_id": anchor.room_id, "code": anchor.code,
                                       "generation": 1}
    status, fresh = call(client, "POST", f"/v1/play/anchors/{anchor.anchor_id}/code/refresh")
    assert status == 200 and fresh["code"] != anchor.code and fresh["generation"] == 2
    assert anchors.resolve(anchor.code) is None
    assert anchors.resolve(fresh["code"]).room_id == anchor.room_id
    assert call(client, "POST", f"/v1/play/anchors/{anchor.anchor_id}/code", {"room_id": anchor.room_id})[1][
        "code"] == fresh["code"]


def test_code__only_its_hmac_is_stored(client):
    import boto3

    from chalicelib.play.tables import PlayConfigItem

    anchor = make_anchor(client)
    items = boto3.client("dynamodb").scan(TableName=PlayConfigItem.Meta.table_name)["Items"]
    assert anchor.code not in str(items)


def test_code__other_room_for_the_same_anchor__409_naming_the_bound_room(client):
    anchor = make_anchor(client)
    status, body = call(client, "POST", f"/v1/play/anchors/{anchor.anchor_id}/code", {"room_id": new_id()})
    assert (status, body["code"], body["room_id"]) == (409, "code_room_conflict", anchor.room_id)
    assert body == problem("code_room_conflict", body["detail"], anchor_id=anchor.anchor_id, room_id=anchor.room_id)
    assert str(anchor.room_id) in body["detail"]


def test_code__bad_body__400_every_field(client):
    status, body = call(client, "POST", f"/v1/play/anchors/{new_id()}/code", {"room_id": "12", "uname": 5, "x": 1})
    assert (status, body) == (400, invalid(("x", "is not a known field"), ("room_id", "must be an integer"),
                                           ("uname", "must be a string")))


def test_refresh__anchor_without_code__404(client):
    anchor_id = new_id()
    status, body = call(client, "POST", f"/v1/play/anchors/{anchor_id}/code/refresh")
    assert (status, body) == (404, problem("anchor_not_found", f"anchor {anchor_id} has no identity code yet",
                                           anchor_id=anchor_id))
    assert clock.now_ms() > 0
