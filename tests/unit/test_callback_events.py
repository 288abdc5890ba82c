"""What each callback event means (`events.interpret`) and which version of an aspect wins (`supersedes`)."""

from __future__ import annotations

import json

import pytest

from chalicelib.callbacks import events
from chalicelib.callbacks.events import AspectUpdate, interpret, supersedes
from rewardgate_ops.sample_events import EVENT_NAMES, SAMPLE_APP_ID, SAMPLE_TP_APP_ID, sample_event

TP = SAMPLE_TP_APP_ID
APP = SAMPLE_APP_ID
T0 = "2024-05-01 12:00:00"
T0_MS = 1714536000000  # 2024-05-01 04:00:00 UTC


def _interpret(event: dict) -> events.Interpretation:
    return interpret(TP, json.dumps(event, ensure_ascii=False))


EXPECTED_ITEM_KEYS = {
    "PUSH": ["#ticket"],
    "AUTHORIZED": [f"{APP}#authorization", f"{APP}#profile"],
    "UPDATE_AUTHORIZED": [f"{APP}#authorization"],
    "UNAUTHORIZED": [f"{APP}#authorization"],
    "MODIFY_APP_NAME": [f"{APP}#review#name"],
    "APP_NAME_RESET_NOTIFICATION": [f"{APP}#review#name_reset"],
    "MODIFY_APP_CATEGORY": [f"{APP}#review#category#188%2C189%2C190", f"{APP}#review#category#158%2C159%2C259"],
    "MODIFY_APP_INTRO": [f"{APP}#review#intro"],
    "MODIFY_APP_ICON": [f"{APP}#review#icon"],
    "PACKAGE_AUDIT": [f"{APP}#review#package_audit#douyin", f"{APP}#review#package_audit#toutiao"],
    "APPLY_VIDEO_CAPABILITY": [f"{APP}#review#video_capability"],
    "APPLY_LIVE_CAPABILITY": [f"{APP}#review#live_capability"],
    "APPLY_PHONE_NUMBER_CAPABILITY": [f"{APP}#review#phone_number_capability"],
    "APPLY_SHARE_TEMPLATE": [f"{APP}#review#share_template#tpl7b2e4c9d1a"],
    "APPLY_CAPACITY": [f"{APP}#review#capacity#video_self_mount"],
    "SELT_MOUNT_BIND": [f"{APP}#review#self_mount#video_self_mount%2Fxinghe_official"],
}


def test_sample_events__cover_every_known_event__and_nothing_else():
    assert set(EVENT_NAMES) == events.KNOWN_EVENTS == set(EXPECTED_ITEM_KEYS)


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_interpret__each_known_event__updates_its_aspect_items_at_its_event_time(name):
    # GIVEN a sample event of this type at a fixed platform time
    time_field = "CreateTime" if name == "PUSH" else "EventTime"
    event = sample_event(name, **{time_field: T0})
    # WHEN interpreted
    decision = _interpret(event)
    # THEN it applies to exactly the expected items, each at the event's time
    assert decision.outcome == events.APPLIED, decision.note
    assert [u.item_key for u in decision.updates] == EXPECTED_ITEM_KEYS[name]
    assert {u.event_time_ms for u in decision.updates} == {T0_MS}


def test_interpret__authorized__authorization_and_masked_profile_with_code_expiry_from_event_time():
    event = sample_event("AUTHORIZED", EventTime=T0, AppSuperAdminEmail="zhangsan@xinghe-games.com",
                         AppSuperAdminMobile="13812345678")
    authorization, profile = _interpret(event).updates
    assert dict(authorization.fields) == {
        "status": "AUTHORIZED",
        "authorization_code": "a8e3f0c2d9b14c6e8f7a5b3c1d2e4f60",
        "authorization_code_expires_in_s": 3600,
        "authorization_code_expires_at_ms": T0_MS + 3_600_000,
    }
    assert dict(profile.fields) == {
        "app_name": "星河答题",
        "app_icon": "https://p3-developer-sign.bytemaimg.com/tos-cn-i-ke512zj2cu/icon-xinghe.png",
        "company_name": "杭州星河互动科技有限公司",
        "admin_email": "z***@xinghe-games.com",  # masked even though the platform sent it in clear
        "admin_mobile": "138****5678",
    }


def test_interpret__update_authorized__new_code_and_status_only():
    (update,) = _interpret(sample_event("UPDATE_AUTHORIZED", EventTime="2024-05-01 12:01:00")).updates
    assert update.item_key == f"{APP}#authorization"
    assert dict(update.fields) == {
        "status": "AUTHORIZED", "authorization_code": "f1c9e2b7a6d54e3f9a8b7c6d5e4f3a21",
        "authorization_code_expires_in_s": 3600, "authorization_code_expires_at_ms": T0_MS + 60_000 + 3_600_000,
    }


def test_interpret__unauthorized__status_without_any_code():
    (update,) = _interpret(sample_event("UNAUTHORIZED", EventTime=T0)).updates
    assert (update.item_key, dict(update.fields)) == (f"{APP}#authorization", {"status": "UNAUTHORIZED"})


@pytest.mark.parametrize(("stored", "newer"), [
    (None, True),                     # nothing stored yet
    ((T0_MS - 1000, "zzz"), True),    # older stored: the new event wins whatever the ids
    ((T0_MS, "e0"), True),            # same second: the higher event id wins
    ((T0_MS, "e5"), False),           # the very same event again: nothing to do
    ((T0_MS, "e9"), False),           # same second, higher stored id: stays
    ((T0_MS + 1000, "a"), False),     # newer stored: an older event changes nothing
])
def test_supersedes__event_time_then_event_id(stored, newer):
    assert supersedes((T0_MS, "e5"), stored) is newer


def test_supersedes__any_arrival_order__same_winner():
    # GIVEN versions with clashing seconds, fed in every rotation of their order
    versions = [(T0_MS, "b"), (T0_MS + 1000, "a"), (T0_MS, "c"), (T0_MS + 1000, "0"), (T0_MS - 5000, "z")]
    winners = set()
    for shift in range(len(versions)):
        stored = None
        for version in versions[shift:] + versions[:shift]:
            if supersedes(version, stored):
                stored = version
        winners.add(stored)
    # THEN the winner is always the newest time, highest id
    assert winners == {(T0_MS + 1000, "a")}


def test_interpret__unknown_event__unknown_with_note():
    decision = _interpret({"Event": "SOMETHING_NEW", "AppId": APP, "EventTime": T0})
    assert (decision.outcome, decision.updates) == (events.UNKNOWN, ())
    assert "SOMETHING_NEW" in decision.note


@pytest.mark.parametrize(("event", "note_part"), [
    (sample_event("AUTHORIZED", EventTime="2024/05/01 12:00"), "event time"),
    (sample_event("AUTHORIZED", EventTime=None), "event time"),
    (sample_event("AUTHORIZED", AppId="bad#id"), "AppId"),
    (sample_event("AUTHORIZED", AuthorizationCode=""), "AuthorizationCode"),
    (sample_event("AUTHORIZED", AuthorizationCodeExpiresIn=-1), "AuthorizationCodeExpiresIn"),
    (sample_event("AUTHORIZED", TpAppId="tpOther"), "TpAppId"),
    (sample_event("PUSH", Ticket=None), "Ticket"),
    (sample_event("PACKAGE_AUDIT", AuditResults=[]), "AuditResults"),
    (sample_event("APPLY_SHARE_TEMPLATE", ApplyShareTemplateResults={"status": 1}), "templateId"),
    (sample_event("APPLY_CAPACITY", EventContent={"capacity_key": "k" * 129}), "capacity_key"),
])
def test_interpret__unusable_known_event__malformed_with_note(event, note_part):
    decision = _interpret(event)
    assert (decision.outcome, decision.updates) == (events.MALFORMED, ())
    assert note_part in decision.note


@pytest.mark.parametrize("payload", ["not json", "[1]", "[" * 5000 + "]" * 5000])
def test_interpret__payload_not_an_object__malformed(payload):
    assert interpret(TP, payload).outcome == events.MALFORMED


def test_summarize__reads_type_and_app_id_or_marks_them_unreadable():
    assert events.summarize(json.dumps(sample_event("MODIFY_APP_ICON"))) == events.Summary("MODIFY_APP_ICON", APP)
    assert events.summarize('{"Event": "a b", "AppId": "x#y"}') == events.Summary("INVALID", None)
    assert events.summarize("garbage") == events.Summary("INVALID", None)


def test_platform_time__utc_plus_8__round_trips():
    assert events.parse_platform_time(T0) == T0_MS
    assert events.format_platform_time(T0_MS) == T0
    assert events.iso_time(T0_MS) == "2024-05-01T12:00:00+08:00"


@pytest.mark.parametrize(("value", "masked"), [
    ("zhangsan@example.com", "z***@example.com"),
    ("z***@example.com", "z***@example.com"),
    ("***@example.com", "***@example.com"),
    ("no-at-sign", "***"),
    (None, None),
])
def test_mask_email(value, masked):
    assert events.mask_email(value) == masked


@pytest.mark.parametrize(("value", "masked"), [
    ("13812345678", "138****5678"), ("138****5678", "138****5678"), ("12345", "****"), ("", None),
])
def test_mask_mobile(value, masked):
    assert events.mask_mobile(value) == masked


def test_aspect_of__inverts_item_key():
    update = AspectUpdate(APP, ("review", "self_mount", "cap/acct#1"), 0, {})
    assert events.aspect_of(update.item_key) == (APP, ("review", "self_mount", "cap/acct#1"))
