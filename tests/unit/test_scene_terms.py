"""A scene's terms history (pure): which award type and template a reward won at a given time gets."""

from __future__ import annotations

from dataclasses import replace

from chalicelib.rewards.config import Terms, next_history, parse_scene, terms_lead_ms

H = 3_600_000
LEAD = terms_lead_ms(5)
HORIZON = 24 * H
T = 1_800_000_000_000


def coupon(template: str):
    return parse_scene("a1", "s1", {"award_type": "coupon", "template_id": template, "order_cap": 5, "total": 9})


def test_terms_lead__open_time_ahead_plus_cache_plus_skew__365_s():
    assert LEAD == 300_000 + 5_000 + 60_000


def test_next_history__template_changed__new_terms_from_now_plus_lead_old_kept_before():
    # GIVEN a scene created with tpl1 WHEN its template becomes tpl2 at T
    first = replace(coupon("tpl1"), history=next_history(None, coupon("tpl1"), T - H, LEAD, HORIZON))
    history = next_history(first, coupon("tpl2"), T, LEAD, HORIZON)
    scene = replace(coupon("tpl2"), history=history)
    # THEN rewards won before T + lead keep tpl1, from T + lead on they get tpl2
    assert history == (Terms(0, "coupon", "tpl1"), Terms(T + LEAD, "coupon", "tpl2"))
    assert scene.terms_at(T + LEAD - 1).asset == "coupon:tpl1"
    assert scene.terms_at(T + LEAD).asset == "coupon:tpl2"


def test_next_history__other_fields_changed__history_unchanged():
    first = replace(coupon("tpl1"), history=(Terms(0, "coupon", "tpl1"),))
    changed = replace(coupon("tpl1"), order_cap=1, shard_count=9, reconcile=False)
    assert next_history(first, changed, T, LEAD, HORIZON) == (Terms(0, "coupon", "tpl1"),)


def test_next_history__terms_no_retry_can_name__dropped_the_rest_kept():
    # GIVEN tpl1, then tpl2 from T, then tpl3 from T + 1 h
    scene = replace(coupon("tpl3"), history=(Terms(0, "coupon", "tpl1"), Terms(T, "coupon", "tpl2"),
                                             Terms(T + H, "coupon", "tpl3")))
    # WHEN the scene is saved again two days later (a cap change)
    history = next_history(scene, replace(coupon("tpl3"), order_cap=2), T + 2 * HORIZON, LEAD, HORIZON)
    # THEN only the terms a retry inside the horizon can still name remain
    assert history == (Terms(T + H, "coupon", "tpl3"),)


def test_next_history__changed_back_and_forth__each_change_appended_in_order():
    scene = replace(coupon("tpl1"), history=(Terms(0, "coupon", "tpl1"),))
    h2 = next_history(scene, coupon("tpl2"), T, LEAD, HORIZON)
    h3 = next_history(replace(coupon("tpl2"), history=h2), coupon("tpl1"), T + 1, LEAD, HORIZON)
    assert [t.template_id for t in h3] == ["tpl1", "tpl2", "tpl1"]
    assert h3[2].from_ms == T + 1 + LEAD > h3[1].from_ms
