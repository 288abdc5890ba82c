"""Which configuration edits are refused because orders already won depend on them (pure rules, fake instants)."""

from __future__ import annotations

import pytest

from chalicelib.errors import AwardTypeImmutable, ChildWindowMoved, StartedChildRemoved
from chalicelib.rewards.config import Activity, Child, parse_scene, terms_lead_ms
from chalicelib.rewards.config_changes import check_award_type_kept, check_children_change

NOW = 1_800_000_000_000
HOUR = 3_600_000
BEHIND = 86_400_000 + 60_000  # the default retry horizon + the clock skew
AHEAD = terms_lead_ms(5)  # 300 s + 5 s cache + 60 s skew


def activity(*children: Child) -> Activity:
    return Activity("a1", "n", tuple(children))


def check(before: Activity | None, after: Activity) -> None:
    check_children_change(before, after, NOW, behind_ms=BEHIND, ahead_ms=AHEAD)


GRAY = Child("gray", "gray_rehearsal", NOW - 2 * HOUR, NOW - HOUR)
FORMAL = Child("formal", "formal", NOW - HOUR, NOW + 24 * HOUR)


def test_check_children_change__new_activity__accepted():
    check(None, activity(GRAY, FORMAL))


def test_check_children_change__boundary_inside_locked_span_moved__refused_naming_child():
    moved = activity(Child("gray", "gray_rehearsal", NOW - 2 * HOUR, NOW - HOUR + 1),
                     Child("formal", "formal", NOW - HOUR + 1, NOW + 24 * HOUR))
    with pytest.raises(ChildWindowMoved) as caught:
        check(activity(GRAY, FORMAL), moved)
    assert (caught.value.details["sub_activity_id"], caught.value.details["at_ms"]) == ("formal", NOW - HOUR)


def test_check_children_change__end_moved_to_within_lead__refused():
    shortened = activity(GRAY, Child("formal", "formal", NOW - HOUR, NOW + AHEAD))
    with pytest.raises(ChildWindowMoved) as caught:
        check(activity(GRAY, FORMAL), shortened)
    assert caught.value.details["at_ms"] == NOW + AHEAD


def test_check_children_change__end_moved_just_beyond_lead__accepted():
    check(activity(GRAY, FORMAL), activity(GRAY, Child("formal", "formal", NOW - HOUR, NOW + AHEAD + 1)))


def test_check_children_change__boundary_before_retry_horizon_moved__accepted():
    old = Child("old", "internal_test", NOW - 10 * 24 * HOUR, NOW - 9 * 24 * HOUR)
    moved = Child("old", "internal_test", NOW - 10 * 24 * HOUR, NOW - 8 * 24 * HOUR)
    check(activity(old, FORMAL), activity(moved, FORMAL))


def test_check_children_change__started_child_renamed__refused():
    renamed = Child("formal2", "formal", FORMAL.starts_at_ms, FORMAL.ends_at_ms)
    with pytest.raises(StartedChildRemoved) as caught:
        check(activity(GRAY, FORMAL), activity(GRAY, renamed))
    assert caught.value.details["sub_activity_id"] == "formal"


def test_check_children_change__ended_child_dropped__refused():
    with pytest.raises(StartedChildRemoved) as caught:
        check(activity(GRAY, FORMAL), activity(FORMAL))
    assert caught.value.details["sub_activity_id"] == "gray"


def test_check_children_change__future_child_dropped__accepted():
    encore = Child("encore", "formal", NOW + 48 * HOUR, NOW + 72 * HOUR)
    check(activity(FORMAL, encore), activity(FORMAL))


def test_check_children_change__child_starting_inside_lead_dropped__refused():
    soon = Child("soon", "formal", NOW + HOUR // 60, NOW + HOUR)
    early = Child("formal", "formal", NOW - HOUR, NOW + HOUR // 60)
    with pytest.raises(ChildWindowMoved) as caught:
        check(activity(early, soon), activity(early))
    assert caught.value.details["sub_activity_id"] == "soon"


COUPON = {"award_type": "coupon", "template_id": "t1", "order_cap": 5, "total": 10}


def test_check_award_type_kept__coupon_to_cash__refused_naming_field():
    with pytest.raises(AwardTypeImmutable) as caught:
        check_award_type_kept(parse_scene("a1", "s1", COUPON),
                              parse_scene("a1", "s1", {"award_type": "cash", "order_cap": 5, "total": 10}))
    assert caught.value.details == {"field": "award_type", "current": "coupon", "requested": "cash"}


def test_check_award_type_kept__template_changed_or_new_scene__accepted():
    check_award_type_kept(parse_scene("a1", "s1", COUPON), parse_scene("a1", "s1", {**COUPON, "template_id": "t2"}))
    check_award_type_kept(None, parse_scene("a1", "s1", COUPON))
