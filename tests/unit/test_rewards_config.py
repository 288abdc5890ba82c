"""Configuration documents (`chalicelib.rewards.config`): activities and child windows, scenes, switches."""

from __future__ import annotations

import pytest

from chalicelib.errors import InvalidField, OutsideActivityWindow, OverlappingWindows, SwitchedOff, SwitchNameRetired
from chalicelib.rewards.config import Switches, parse_activity, parse_scene, parse_switch, scene_grants_switch

H = 3_600_000


def child(sub: str, start: int, end: int, purpose: str = "formal") -> dict:
    return {"sub_activity_id": sub, "purpose": purpose, "starts_at_ms": start, "ends_at_ms": end}


def activity_body(*children: dict) -> dict:
    return {"name": "spring", "children": list(children)}


def field_error(call, *args) -> tuple[str, str]:
    with pytest.raises(InvalidField) as refused:
        call(*args)
    return refused.value.details["field"], refused.value.message


def test_parse_activity__consecutive_windows__children_ordered_and_each_instant_in_one_child():
    # GIVEN three back-to-back children, listed out of order
    body = activity_body(child("formal", 2 * H, 3 * H), child("internal", 0, H, "internal_test"),
                         child("gray", H, 2 * H, "gray_rehearsal"))
    # WHEN parsed
    activity = parse_activity("act1", body)
    # THEN children are ordered by start, and windows are half-open: the boundary belongs to the later one
    assert [c.sub_activity_id for c in activity.children] == ["internal", "gray", "formal"]
    assert activity.child_at(0).sub_activity_id == "internal"
    assert activity.child_at(H - 1).sub_activity_id == "internal"
    assert activity.child_at(H).sub_activity_id == "gray"
    assert activity.child_at(3 * H - 1).sub_activity_id == "formal"
    with pytest.raises(OutsideActivityWindow):
        activity.child_at(3 * H)
    with pytest.raises(OutsideActivityWindow):
        activity.child_at(-1)
    assert activity.ns(activity.children[1]) == "act1/gray"


def test_wallet_child_at__after_every_window__the_latest_started_child_keeps_its_wallets():
    activity = parse_activity("act1", activity_body(child("a", 0, H), child("b", 2 * H, 3 * H)))
    assert activity.wallet_child_at(10 * H).sub_activity_id == "b"
    assert activity.wallet_child_at(int(1.5 * H)).sub_activity_id == "a"
    with pytest.raises(OutsideActivityWindow):
        activity.wallet_child_at(-1)


@pytest.mark.parametrize("second", [(11 * H - 1, 12 * H), (10 * H, 11 * H), (9 * H, 15 * H), (10 * H + 1, 10 * H + 2),
                                    (9 * H, 10 * H + 1)])
def test_parse_activity__overlapping_windows__refused_naming_both_children(second):
    with pytest.raises(OverlappingWindows) as refused:
        parse_activity("act1", activity_body(child("a", 10 * H, 11 * H), child("b", *second)))
    assert sorted(refused.value.details["children"]) == ["a", "b"]


@pytest.mark.parametrize(("body", "field"), [
    ({"children": []}, "children"),
    ({"children": "x"}, "children"),
    ({"name": "n"}, "children"),
    ({"children": [child(f"c{i}", i * H, (i + 1) * H) for i in range(17)]}, "children"),
    ({"children": [1]}, "children[0]"),
    ({"children": [child("a", H, H)]}, "children[0].ends_at_ms"),
    ({"children": [child("a", 0, H), child("a", H, 2 * H)]}, "children"),
    ({"children": [{**child("a", 0, H), "extra": 1}]}, "children[0].extra"),
    ({"children": [child("a_b", 0, H)]}, "children[0].sub_activity_id"),
    ({"children": [child("a", 0, H, "production")]}, "children[0].purpose"),
    ({"children": [child("a", "0", H)]}, "children[0].starts_at_ms"),
    ({"children": [child("a", 0, H)], "name": 5}, "name"),
    ({"children": [child("a", 0, H)], "activity_id": "other"}, "activity_id"),
    ({"children": [child("a", 0, H)], "budget": 1}, "budget"),
])
def test_parse_activity__bad_field__refused_naming_it(body, field):
    assert field_error(parse_activity, "act1", body)[0] == field


def scene(**fields) -> dict:
    return {"award_type": "cash", "order_cap": 100, "total": 1000, **fields}


def test_parse_scene__defaults__four_shards_reconciled_with_bill_text():
    parsed = parse_scene("act1", "s1", scene())
    assert (parsed.shard_count, parsed.stock_control, parsed.reconcile, parsed.rate_limit_per_s) == (4, True, True, 0)
    assert parsed.asset == "CNY" and parsed.bill_text == "cash reward" and parsed.template_id is None


def test_parse_scene__coupon__asset_names_the_template():
    parsed = parse_scene("act1", "s1", scene(award_type="coupon", template_id="tpl9"))
    assert parsed.asset == "coupon:tpl9"


def test_parse_scene__no_stock_control__total_may_be_omitted():
    parsed = parse_scene("act1", "s1", {"award_type": "cash", "order_cap": 5, "stock_control": False})
    assert (parsed.stock_control, parsed.total) == (False, 0)


@pytest.mark.parametrize(("body", "field"), [
    (scene(award_type="points"), "award_type"),
    ({"order_cap": 1, "total": 1}, "award_type"),
    (scene(award_type="coupon"), "template_id"),
    (scene(award_type="coupon", template_id="t#1"), "template_id"),
    (scene(template_id="tpl1"), "template_id"),
    (scene(order_cap=0), "order_cap"),
    (scene(order_cap=1.5), "order_cap"),
    (scene(order_cap=True), "order_cap"),
    ({"award_type": "cash", "order_cap": 1}, "total"),
    (scene(total=-1), "total"),
    (scene(shard_count=0), "shard_count"),
    (scene(shard_count=4001), "shard_count"),
    (scene(rate_limit_per_s=-1), "rate_limit_per_s"),
    (scene(stock_control="yes"), "stock_control"),
    (scene(reconcile=1), "reconcile"),
    (scene(bill_text="x" * 129), "bill_text"),
    (scene(scene_id="other"), "scene_id"),
    (scene(colour="red"), "colour"),
])
def test_parse_scene__bad_field__refused_naming_it(body, field):
    assert field_error(parse_scene, "act1", "s1", body)[0] == field


@pytest.mark.parametrize(("name", "body", "expected"), [
    ("grants", {"enabled": False}, {"enabled": False}),
    ("token_issuance", {"enabled": True}, {"enabled": True}),
    ("withdrawals", {"enabled": False}, {"enabled": False}),
    ("withdrawal_gray_percent", {"percent": 0}, {"percent": 0}),
    ("withdrawal_gray_percent", {"percent": 100}, {"percent": 100}),
    ("grants:act1:scene-2", {"enabled": False}, {"enabled": False}),
    ("grants:act.1:scene.2", {"enabled": True}, {"enabled": True}),
])
def test_parse_switch__known_switches__value_kept(name, body, expected):
    assert parse_switch(name, body) == expected


@pytest.mark.parametrize(("name", "body", "field"), [
    ("withdrawal_gray_percent", {"percent": 101}, "percent"),
    ("withdrawal_gray_percent", {"percent": -1}, "percent"),
    ("withdrawal_gray_percent", {"enabled": True}, "enabled"),
    ("grants", {"enabled": "off"}, "enabled"),
    ("grants", {}, "enabled"),
    ("grants.act1", {"enabled": False}, "name"),
    ("grants.act_1.s", {"enabled": False}, "name"),
    ("grants:act1", {"enabled": False}, "name"),
    ("grants:act_1:s", {"enabled": False}, "name"),
    ("grants:a:b:c", {"enabled": False}, "name"),
    ("payouts", {"enabled": False}, "name"),
])
def test_parse_switch__bad_name_or_value__refused_naming_the_field(name, body, field):
    assert field_error(parse_switch, name, body)[0] == field


def test_switches__absent__everything_on_and_gray_at_100_percent():
    switches = Switches(values={})
    switches.require_grants("a", "s")
    switches.require_withdrawal("anyone")


@pytest.mark.parametrize("off", ["grants", "grants:a:s"])
def test_switches__grants_off_globally_or_for_the_scene__refused_naming_the_switch(off):
    switches = Switches(values={off: {"enabled": False}})
    with pytest.raises(SwitchedOff) as refused:
        switches.require_grants("a", "s")
    assert refused.value.details == {"switch": off}
    # another scene is untouched by a per-scene switch
    if off != "grants":
        switches.require_grants("a", "other")


def test_switches__withdrawal_gray__admits_exactly_the_gray_users():
    from chalicelib.rewards.ids import gray_admits

    switches = Switches(values={"withdrawal_gray_percent": {"percent": 40}})
    for user in (f"u{i}" for i in range(200)):
        if gray_admits(user, 40):
            switches.require_withdrawal(user)
        else:
            with pytest.raises(SwitchedOff) as refused:
                switches.require_withdrawal(user)
            assert refused.value.details == {"switch": "withdrawal_gray_percent"}
    with pytest.raises(SwitchedOff):
        Switches(values={"withdrawals": {"enabled": False}}).require_withdrawal("u1")


# --- per-scene grants switches with dotted ids ---------------------------------------------------------


def test_switches__scene_switch_of_dotted_ids__switches_off_that_scene_only():
    # GIVEN grants switched off for activity "a", scene "b.c"
    switches = Switches(values={scene_grants_switch("a", "b.c"): {"enabled": False}})
    # THEN that scene is refused
    with pytest.raises(SwitchedOff):
        switches.require_grants("a", "b.c")
    # AND activity "a.b", scene "c" (whose ids join to the same dotted text) still grants
    switches.require_grants("a.b", "c")


@pytest.mark.parametrize(("name", "readings"), [
    ("grants.a.s", ["grants:a:s"]),
    ("grants.a.b.c", ["grants:a.b:c", "grants:a:b.c"]),
    ("grants.a.b.c.d", ["grants:a.b.c:d", "grants:a.b:c.d", "grants:a:b.c.d"]),
])
def test_parse_switch__retired_dotted_scene_name__refused_naming_the_new_format_and_every_reading(name, readings):
    with pytest.raises(SwitchNameRetired) as refused:
        parse_switch(name, {"enabled": False})
    assert refused.value.details == {"field": "name", "expected_format": "grants:<activity>:<scene>",
                                     "candidates": readings}


def test_switches__stored_under_the_retired_name__still_off_for_every_reading_until_the_new_name_is_set():
    # GIVEN a switch an operator set before the change, under the retired (ambiguous) name
    switches = Switches(values={"grants.a.b.c": {"enabled": False}})
    # THEN it fails closed: both scenes it could mean are refused, naming it
    for activity_id, scene_id in (("a", "b.c"), ("a.b", "c")):
        with pytest.raises(SwitchedOff) as refused:
            switches.require_grants(activity_id, scene_id)
        assert refused.value.details == {"switch": "grants.a.b.c"}
    # AND once one scene's new-format switch is set, that one follows it alone
    switches = Switches(values={"grants.a.b.c": {"enabled": False}, "grants:a.b:c": {"enabled": True}})
    switches.require_grants("a.b", "c")
    with pytest.raises(SwitchedOff):
        switches.require_grants("a", "b.c")
