"""Request models of interactive play: every invalid field named, live messages checked on what matters."""

from __future__ import annotations

import pytest

from chalicelib.edge.fields import validated
from chalicelib.errors import InvalidField, OpenLiveBadRequest
from chalicelib.play import models as m


def problems(model, body) -> dict[str, str]:
    with pytest.raises(InvalidField) as caught:
        validated(model, body)
    return {p["field"]: p["problem"] for p in caught.value.details["errors"]}


def test_play_app_put__several_bad_fields__every_one_named():
    found = problems(m.PlayAppPut, {"name": "", "share_bp": 10_001, "interactive_gift_ids": [0, "2"],
                                    "sandbox": "yes", "colour": "red"})
    assert found == {"name": "must be at least 1 characters", "share_bp": "must be at most 10000",
                     "interactive_gift_ids[0]": "must be at least 1", "interactive_gift_ids[1]": "must be an integer",
                     "sandbox": "must be true or false", "colour": "is not a known field"}


def test_play_app_put__repeated_gift__refused():
    assert "repeat" in str(problems(m.PlayAppPut, {"name": "a", "share_bp": 1, "interactive_gift_ids": [3, 3]}))


def test_limits__cap_below_base__refused():
    found = problems(m.PlayAppPut, {"name": "a", "share_bp": 1, "interactive_gift_ids": [],
                                    "limits": {"ban_base_s": 100, "ban_cap_s": 10}})
    assert list(found) == ["limits"]


def test_gift_data__money_fields_strict__a_string_price_or_bool_num_refused_extra_fields_kept():
    found = problems(m.GiftData, {"msg_id": "x", "open_id": "o", "uname": "u", "gift_id": 1, "gift_name": "g",
                                  "gift_num": True, "price": "1000", "paid": 1})
    assert set(found) == {"gift_num", "price", "paid"}
    ok = validated(m.GiftData, {"msg_id": "x", "open_id": "o", "uname": "u", "gift_id": 1, "gift_name": "g",
                              "gift_num": 2, "price": 1000, "paid": True, "combo_info": {"combo_count": 3}})
    assert ok.model_extra == {"combo_info": {"combo_count": 3}}


def test_open_live_body__numeric_strings_accepted_extras_refused__missing_field_is_4000():
    body = m.parse_open_live(m.StartBody, {"code": "ABC", "app_id": "12"})
    assert (body.code, body.app_id) == ("ABC", 12)
    # a field the API does not take is refused (the signature does not cover the path: a body fits one API only)
    with pytest.raises(OpenLiveBadRequest, match="extra: Extra inputs are not permitted"):
        m.parse_open_live(m.StartBody, {"code": "ABC", "app_id": "12", "extra": 1})
    with pytest.raises(OpenLiveBadRequest, match="game_id"):
        m.parse_open_live(m.EventsBody, {"after_seq": 1})
    with pytest.raises(OpenLiveBadRequest, match="limit"):
        m.parse_open_live(m.EventsBody, {"game_id": "g", "limit": 101})
