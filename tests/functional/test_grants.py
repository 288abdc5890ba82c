"""POST /v1/grants and /v1/grants/batch through the Chalice test client, on DynamoDB Local and moto SQS:
exact answers, and "changes nothing" for every refusal."""

from __future__ import annotations

import json
import types

import pytest

from chalicelib import clients, clock, process_state
from chalicelib.rewards import grants, ratelimit, tokens
from chalicelib.rewards.orders import parse_credit_message
from chalicelib.rewards.tables import ACCEPTED, CREDITED
from tests.conftest import uid
from tests.problems import IDENT_PROBLEM, invalid, problem
from tests.rewards_support import (
    HOUR_MS,
    Campaign,
    call,
    credit_messages_of,
    deliver_credits,
    distributed,
    grant_direct,
    ledger_sums,
    make_campaign,
    ns_of,
    order_id_of,
    order_item,
    orders_of,
    purge_credits,
    reset_process_state,
    run_credit_worker,
    stock_shards,
    switch,
    wallet_id_of,
)


@pytest.fixture
def campaign(client) -> Campaign:
    return make_campaign(client, total=10_000, shard_count=4, order_cap=500)


def consumed(campaign: Campaign) -> int:
    return sum(int(s.consumed) for s in stock_shards(campaign))


def assert_nothing_written(campaign: Campaign, act_id: str = "u1") -> None:
    assert orders_of(campaign) == []
    assert consumed(campaign) == 0
    assert ledger_sums(wallet_id_of(campaign, act_id)).entries == 0


def public_keys(client) -> dict:
    status, body = call(client, "GET", "/v1/keys/reward-token")
    assert status == 200 and body["alg"] == "Ed25519"
    return {k["kid"]: tokens.load_public_key(k["public_key"]) for k in body["keys"]}


# --- the happy path and idempotency -----------------------------------------------------------


def test_grant__new_order__202_with_a_token_that_verifies_with_the_published_key(client, campaign):
    # WHEN a new reward is granted
    status, body = call(client, "POST", "/v1/grants", campaign.grant_body("u1", rain_id="r7", amount=300, stage="2"))
    # THEN it is accepted with the order's facts
    order_id = f"u1_{campaign.scene_id}_r7_cash_2"
    assert status == 202
    assert {k: v for k, v in body.items() if k not in ("token", "created_at_ms")} == {
        "order_id": order_id, "status": "ACCEPTED", "amount": 300, "asset": "CNY",
        "activity_id": campaign.activity_id, "sub_activity_id": "formal", "scene_id": campaign.scene_id,
        "act_id": "u1"}
    # AND the token verifies offline with the published public key and states the same facts
    claims = tokens.verify(body["token"], public_keys(client))
    assert {k: claims[k] for k in ("order_id", "amount", "act_id", "activity_id", "sub_activity_id", "scene_id",
                                   "rain_id", "stage", "asset", "award_type")} == {
        "order_id": order_id, "amount": 300, "act_id": "u1", "activity_id": campaign.activity_id,
        "sub_activity_id": "formal", "scene_id": campaign.scene_id, "rain_id": "r7", "stage": "2", "asset": "CNY",
        "award_type": "cash"}
    assert claims["open_time_ms"] == campaign.won_ms
    # AND exactly one order and its stock are stored
    assert [o.order_id for o in orders_of(campaign)] == [order_id]
    assert consumed(campaign) == 300


def test_grant__repeat_same_content__200_original_order_and_identical_token_nothing_more_consumed(client, campaign):
    body = campaign.grant_body("u1", amount=120)
    first = call(client, "POST", "/v1/grants", body)
    # WHEN the same grant is repeated
    again = call(client, "POST", "/v1/grants", body)
    # THEN the original order comes back, token included, and stock is consumed once
    assert first[0] == 202 and again == (200, first[1])
    assert consumed(campaign) == 120 and len(orders_of(campaign)) == 1


def test_grant__same_order_id_other_amount__409_order_conflict_nothing_changed(client, campaign):
    call(client, "POST", "/v1/grants", campaign.grant_body("u1", amount=120))
    status, body = call(client, "POST", "/v1/grants", campaign.grant_body("u1", amount=121))
    oid = order_id_of(campaign, "u1")
    assert (status, body) == (409, problem('order_conflict',
                                           f'order {oid} exists with different content', order_id=oid,
                                           existing_amount=120))
    assert consumed(campaign) == 120 and int(order_item(campaign, oid).amount) == 120


def test_grant__repeat_after_the_scene_sold_out__still_200_with_the_original_order(client, monkeypatch):
    """Idempotency must not depend on stock: a client whose first answer was lost retries after the
    scene sold out and must learn that its order exists (else the user is told "sold out" and paid).
    The process-local "shard is full" hint is held for a minute here so the outcome does not depend on
    how fast the three calls run."""
    monkeypatch.setattr(grants, "FULL_HINT_S", 60.0)
    campaign = make_campaign(client, total=2, shard_count=1, order_cap=5)
    first = grant_direct(campaign.grant_body("a", amount=1))
    assert grant_direct(campaign.grant_body("b", amount=1))[0] == 202
    # GIVEN the scene is sold out (this process saw its shard full)
    assert grant_direct(campaign.grant_body("c", amount=1))[1]["code"] == "sold_out"
    # WHEN the first grant is repeated
    again = grant_direct(campaign.grant_body("a", amount=1))
    # THEN it gets its order back, not sold_out
    assert first[0] == 202 and again == (200, first[1])


def test_grant__scene_without_stock_control__granted_and_idempotent_without_counters(client):
    campaign = make_campaign(client, stock_control=False, order_cap=50)
    first = call(client, "POST", "/v1/grants", campaign.grant_body("u1", amount=50))
    again = call(client, "POST", "/v1/grants", campaign.grant_body("u1", amount=50))
    conflict = call(client, "POST", "/v1/grants", campaign.grant_body("u1", amount=49))
    assert first[0] == 202 and again == (200, first[1]) and conflict[0] == 409
    assert stock_shards(campaign) == [] and len(orders_of(campaign)) == 1
    status, stock = call(client, "GET", f"/v1/activities/{campaign.activity_id}/scenes/{campaign.scene_id}/stock")
    assert (status, stock) == (200, {"activity_id": campaign.activity_id, "scene_id": campaign.scene_id,
                                     "sub_activity_id": "formal", "stock_control": False, "asset": "CNY"})


def test_grant__coupon_scene__credited_into_the_template_wallet(client):
    campaign = make_campaign(client, award_type="coupon", total=3, shard_count=2, order_cap=1)
    purge_credits()
    status, body = call(client, "POST", "/v1/grants", campaign.grant_body("u1", amount=1))
    assert (status, body["asset"]) == (202, "coupon:tpl1")
    deliver_credits()
    status, wallet = call(client, "GET", f"/v1/wallets/u1?activity_id={campaign.activity_id}&asset=coupon:tpl1")
    assert (status, wallet["balance"], wallet["currency"]) == (200, 1, "coupon:tpl1")
    status, cash = call(client, "GET", f"/v1/wallets/u1?activity_id={campaign.activity_id}")
    assert (status, cash["balance"]) == (200, 0)
    status, totals = call(client, "GET", f"/v1/activities/{campaign.activity_id}/totals")
    assert totals["children"][0]["distributed"] == {"coupon:tpl1": {"amount": 1, "rewards": 1}}


def test_totals__distributed_shards_lowered_after_credits__every_credited_fen_still_counted(client, monkeypatch):
    from chalicelib.rewards import counters, crediting, ids

    campaign = make_campaign(client, total=10_000, shard_count=2, order_cap=500)
    purge_credits()
    try:
        # GIVEN rewards credited while RG_DISTRIBUTED_SHARDS was 16, tallied onto the highest shard
        monkeypatch.setenv("RG_DISTRIBUTED_SHARDS", "16")
        process_state.reset()
        monkeypatch.setattr(crediting, "random", types.SimpleNamespace(randrange=lambda n: n - 1))
        status, _ = call(client, "POST", "/v1/grants/batch",
                         {"grants": [campaign.grant_body(f"u{i}", amount=100 + i) for i in range(5)]})
        assert status == 200
        deliver_credits()
        # WHEN the setting is lowered to 4 and the totals are read
        monkeypatch.setenv("RG_DISTRIBUTED_SHARDS", "4")
        process_state.reset()
        status, totals = call(client, "GET", f"/v1/activities/{campaign.activity_id}/totals")
    finally:
        monkeypatch.undo()
        process_state.reset()
    # THEN nothing credited is hidden: the head remembers 16 shards and all of them are summed
    assert status == 200
    assert totals["children"][0]["distributed"] == {"CNY": {"amount": 510, "rewards": 5}}
    counter = ids.distributed_counter_id(ns_of(campaign), "CNY")
    assert counters.allocated_shards(counter) == 16


# --- refusals: exact bodies, nothing written -------------------------------------------------


@pytest.mark.parametrize("field", ["activity_id", "scene_id", "act_id", "rain_id", "award_type", "stage", "amount"])
def test_grant__field_missing__400_naming_it_nothing_written(client, campaign, field):
    body = campaign.grant_body("u1")
    del body[field]
    status, answer = call(client, "POST", "/v1/grants", body)
    assert status == 400
    assert answer["code"] == "invalid_field" and answer["field"] == field
    assert answer["detail"].startswith(f"{field}: is required")
    assert_nothing_written(campaign)


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("act_id", "u_1", IDENT_PROBLEM),
    ("act_id", "u#1", IDENT_PROBLEM),
    ("rain_id", "r_1", IDENT_PROBLEM),
    ("stage", "1#2", IDENT_PROBLEM),
    ("act_id", 42, "must be a string"),
    ("amount", "100", "must be an integer"),
    ("amount", 100.0, "must be an integer"),
    ("amount", True, "must be an integer"),
    ("amount", 0, "must be at least 1"),
    ("amount", -1, "must be at least 1"),
    ("amount", 2**53, "must be at most 9007199254740991"),
    ("award_type", "points", "must be one of 'cash' or 'coupon'"),
    ("open_time_ms", "1", "must be an integer"),
])
def test_grant__field_wrong__400_exact_body_nothing_written(client, campaign, field, value, expected):
    status, answer = call(client, "POST", "/v1/grants", {**campaign.grant_body("u1"), field: value})
    assert (status, answer) == (400, invalid((field, expected)))
    assert_nothing_written(campaign)


def test_grant__several_fields_wrong__every_one_reported_nothing_written(client, campaign):
    body = {**campaign.grant_body("u1"), "amount": 0, "act_id": "u#1", "color": "red"}
    del body["stage"]
    status, answer = call(client, "POST", "/v1/grants", body)
    assert (status, answer) == (400, invalid(("color", "is not a known field"), ("act_id", IDENT_PROBLEM),
                                             ("stage", "is required"), ("amount", "must be at least 1")))
    assert_nothing_written(campaign)


def test_grant__unknown_field__400_naming_it(client, campaign):
    status, answer = call(client, "POST", "/v1/grants", {**campaign.grant_body("u1"), "order_id": "x"})
    assert (status, answer) == (400, problem('invalid_field', 'order_id: is not a known field', field='order_id'))
    assert_nothing_written(campaign)


@pytest.mark.parametrize(("raw", "message"), [
    ("", "request body is empty; expected a JSON object"),
    ("{not json", "request body is not valid JSON"),
    ("[1, 2]", "request body must be a JSON object"),
])
def test_grant__not_a_json_object__400_invalid_json(client, raw, message):
    response = client.http.post("/v1/grants", body=raw, headers={"Content-Type": "application/json"})
    assert (response.status_code, json.loads(response.body)) == (400, problem('invalid_json', message))


def test_grant__unknown_activity_or_scene__404_with_code(client, campaign):
    ghost = uid("act")
    status, answer = call(client, "POST", "/v1/grants", {**campaign.grant_body("u1"), "activity_id": ghost})
    assert (status, answer) == (404, problem('activity_not_found',
                                             f'activity {ghost} is not configured', activity_id=ghost))
    status, answer = call(client, "POST", "/v1/grants", {**campaign.grant_body("u1"), "scene_id": "nope"})
    assert (status, answer) == (404, problem('scene_not_found',
                                             f'scene nope of activity {campaign.activity_id} is not configured',
                                             activity_id=campaign.activity_id, scene_id='nope'))
    assert_nothing_written(campaign)


def test_grant__won_outside_every_child_window__404_outside_activity_window(client, campaign, monkeypatch):
    at = clock.now_ms() + 48 * HOUR_MS
    monkeypatch.setattr(clock, "now_ms", lambda: at)
    status, answer = call(client, "POST", "/v1/grants", campaign.grant_body("u1", open_time_ms=at))
    assert (status, answer) == (404, problem('outside_activity_window',
                                             f'activity {campaign.activity_id} has no child activity open at {at}',
                                             activity_id=campaign.activity_id))
    assert_nothing_written(campaign)


def test_grant__amount_over_the_order_cap__422_naming_the_cap(client, campaign):
    ok = call(client, "POST", "/v1/grants", campaign.grant_body("u2", amount=500))
    status, answer = call(client, "POST", "/v1/grants", campaign.grant_body("u1", amount=501))
    assert ok[0] == 202
    assert (status, answer) == (422, problem('amount_over_cap',
                                             'amount 501 exceeds the per-order cap 500', order_cap=500))
    assert order_item(campaign, order_id_of(campaign, "u1")) is None and consumed(campaign) == 500


def test_grant__award_type_not_the_scenes__422(client, campaign):
    status, answer = call(client, "POST", "/v1/grants", {**campaign.grant_body("u1"), "award_type": "coupon"})
    assert (status, answer) == (422, problem('award_type_mismatch',
                                             f'scene {campaign.scene_id} grants cash, not coupon', expected='cash'))
    assert_nothing_written(campaign)


def test_grant__stock_exhausted__409_sold_out_nothing_written(client):
    campaign = make_campaign(client, total=300, shard_count=3, order_cap=300)
    assert call(client, "POST", "/v1/grants", campaign.grant_body("u1", amount=100))[0] == 202
    # 200 left over 3 shards (100 each at most): 150 fits no single shard, 100 does
    status, answer = call(client, "POST", "/v1/grants", campaign.grant_body("u2", amount=150))
    assert (status, answer) == (409, problem('sold_out',
                                             f'scene {campaign.scene_id} is sold out', scene_id=campaign.scene_id,
                                             sub_activity_id='formal'))
    assert order_item(campaign, order_id_of(campaign, "u2")) is None and consumed(campaign) == 100
    for user in ("u3", "u4"):
        assert call(client, "POST", "/v1/grants", campaign.grant_body(user, amount=100))[0] == 202
    status, answer = call(client, "POST", "/v1/grants", campaign.grant_body("u5", amount=1))
    assert (status, answer["code"]) == (409, "sold_out")
    assert consumed(campaign) == 300 and len(orders_of(campaign)) == 3


def test_grant__rate_limit__429_with_retry_after_nothing_written(client, monkeypatch):
    campaign = make_campaign(client, rate_limit_per_s=2)
    reset_process_state()
    # the bucket's clock stands still, so the outcome cannot depend on how fast the calls run
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(monotonic=lambda: 1000.0))
    answers = [client.http.post("/v1/grants", body=json.dumps(campaign.grant_body(f"u{n}")),
                                headers={"Content-Type": "application/json"}) for n in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[2].headers["Retry-After"] == "1"
    assert json.loads(answers[2].body) == problem('rate_limited', 'grant rate limit of 2/s reached', retry_after_s=1)
    assert order_item(campaign, order_id_of(campaign, "u2")) is None and len(orders_of(campaign)) == 2
    reset_process_state()


# --- switches --------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["global", "scene"])
def test_grant__grants_switched_off__503_switched_off_nothing_written(client, campaign, scope):
    name = "grants" if scope == "global" else f"grants:{campaign.activity_id}:{campaign.scene_id}"
    with switch(client, name, {"enabled": False}):
        status, answer = call(client, "POST", "/v1/grants", campaign.grant_body("u1"))
        batch_status, batch = call(client, "POST", "/v1/grants/batch", {"grants": [campaign.grant_body("u2")]})
    assert (status, answer) == (503, problem('switched_off', f'grants are switched off ({name})', switch=name))
    assert batch_status == 200 and batch["results"][0]["status"] == 503
    assert_nothing_written(campaign)
    # switched back on, the same grant goes through
    assert call(client, "POST", "/v1/grants", campaign.grant_body("u1"))[0] == 202


def test_grant__scene_switch__leaves_other_scenes_granting(client, campaign):
    other = make_campaign(client)
    with switch(client, f"grants:{campaign.activity_id}:{campaign.scene_id}", {"enabled": False}):
        assert call(client, "POST", "/v1/grants", other.grant_body("u1"))[0] == 202


def test_grant__token_issuance_off__accepted_with_null_token_then_the_repeat_carries_it(client, campaign):
    with switch(client, "token_issuance", {"enabled": False}):
        status, body = call(client, "POST", "/v1/grants", campaign.grant_body("u1"))
    assert (status, body["token"], body["status"]) == (202, None, "ACCEPTED")
    assert consumed(campaign) == 100
    status, again = call(client, "POST", "/v1/grants", campaign.grant_body("u1"))
    assert status == 200 and tokens.verify(again["token"], public_keys(client))["order_id"] == body["order_id"]


def test_grant__signing_key_missing__503_before_anything_is_written(client, campaign, monkeypatch, capsys):
    # GIVEN a deployment whose reward-token signing key is not configured (token issuance on)
    monkeypatch.setattr(tokens, "get_secret_json", lambda name, **_: None)
    # WHEN a grant and a batch grant arrive
    status, answer = call(client, "POST", "/v1/grants", campaign.grant_body("u1"))
    batch_status, batch = call(client, "POST", "/v1/grants/batch", {"grants": [campaign.grant_body("u2")]})
    # THEN both are refused as a server-side fault that names no secret (the body used to
    # carry "secret": "rewardgate/local/reward-token-key"); the log keeps the cause
    assert (status, answer) == (503, problem("storage_unavailable"))
    assert "reward-token-key" not in json.dumps(answer)
    assert "rewardgate/local/reward-token-key" in capsys.readouterr().out
    assert (batch_status, batch) == (status, answer)
    assert_nothing_written(campaign)
    assert_nothing_written(campaign, act_id="u2")


# --- batch -----------------------------------------------------------------------------------


def test_grant_batch__mixed_items__each_with_its_own_status_and_body(client, campaign):
    purge_credits()
    existing = call(client, "POST", "/v1/grants", campaign.grant_body("old", amount=10))[1]
    credit_messages_of(campaign)
    items = [
        campaign.grant_body("new1", amount=20),
        campaign.grant_body("old", amount=10),
        campaign.grant_body("old", amount=11),
        {**campaign.grant_body("bad"), "act_id": "b_d"},
        campaign.grant_body("new2", amount=501),
        campaign.grant_body("new1", amount=20),
        "not an object",
    ]
    status, answer = call(client, "POST", "/v1/grants/batch", {"grants": items})
    assert status == 200
    results = answer["results"]
    assert [(r["index"], r["status"]) for r in results] == [(0, 202), (1, 200), (2, 409), (3, 400), (4, 422),
                                                           (5, 200), (6, 400)]
    assert results[1]["body"] == existing
    assert results[5]["body"] == results[0]["body"]
    assert results[2]["body"]["code"] == "order_conflict"
    assert results[3]["body"] == problem('invalid_field', f'act_id: {IDENT_PROBLEM}', field='act_id')
    assert results[4]["body"]["code"] == "amount_over_cap"
    assert results[6]["body"] == problem('invalid_field', 'grant: must be a JSON object', field='grant')
    assert tokens.verify(results[0]["body"]["token"], public_keys(client))["amount"] == 20
    # only the one new order was written and sent for crediting
    assert sorted(o.order_id for o in orders_of(campaign)) == sorted([order_id_of(campaign, "new1"),
                                                                       order_id_of(campaign, "old")])
    assert consumed(campaign) == 30
    assert len(credit_messages_of(campaign)) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"grants": []}, "grants"),
    ({"grants": {}}, "grants"),
    ({}, "grants"),
    ({"grants": [{}], "extra": 1}, "extra"),
])
def test_grant_batch__bad_envelope__400(client, body, field):
    status, answer = call(client, "POST", "/v1/grants/batch", body)
    assert status == 400 and answer["field"] == field


def test_grant_batch__more_than_100_items__400_nothing_written(client, campaign):
    items = [campaign.grant_body(f"u{n}", amount=1) for n in range(101)]
    status, answer = call(client, "POST", "/v1/grants/batch", {"grants": items})
    assert (status, answer) == (400, problem('invalid_field',
                                             'grants: must have at most 100 items', field='grants'))
    assert orders_of(campaign) == [] and consumed(campaign) == 0


def test_grant_batch__100_items__all_granted_messages_batched_all_credited(client, campaign):
    purge_credits()
    items = [campaign.grant_body(f"u{n % 7}", rain_id=f"r{n}", amount=1 + n) for n in range(100)]
    status, answer = call(client, "POST", "/v1/grants/batch", {"grants": items})
    assert status == 200 and {r["status"] for r in answer["results"]} == {202}
    # one message per order was sent (the queue is shared: keep this campaign's)
    mine = credit_messages_of(campaign)
    assert sorted(parse_credit_message(m).order_id for m in mine) == sorted(r["body"]["order_id"]
                                                                         for r in answer["results"])
    for start in range(0, 100, 10):
        assert run_credit_worker(mine[start:start + 10])[1] == []
    assert sum(ledger_sums(wallet_id_of(campaign, f"u{u}")).credits for u in range(7)) == sum(range(1, 101))
    assert distributed(campaign) == (sum(range(1, 101)), 100)


# --- enqueue failure and the sweeper ---------------------------------------------------------


class FailingSqs:
    """An SQS client whose sends fail, as when SQS is unreachable."""

    def send_message_batch(self, **_: object) -> dict:
        raise ConnectionError("sqs unreachable")


def test_grant__credit_enqueue_fails__order_flagged_unsent_sweeper_resends_it_credited_once(client, campaign,
                                                                                           monkeypatch):
    purge_credits()
    # GIVEN SQS refuses every send during the grant
    real_sqs = clients.sqs
    monkeypatch.setattr(clients, "sqs", lambda: FailingSqs())
    status, body = call(client, "POST", "/v1/grants", campaign.grant_body("u1", amount=77))
    monkeypatch.setattr(clients, "sqs", real_sqs)
    # THEN the grant still succeeds (the order is durable), and the order is flagged unsent
    assert status == 202
    order = order_item(campaign, body["order_id"])
    assert order.status == ACCEPTED and order.unsent_bucket is not None
    assert credit_messages_of(campaign) == []
    # WHEN the sweeper runs
    resent = grants.resend_unsent()
    # THEN it re-sent exactly this order's message once, and the flag is gone
    assert resent >= 1
    assert order_item(campaign, body["order_id"]).unsent_bucket is None
    mine = [m for m in credit_messages_of(campaign) if parse_credit_message(m).order_key == order.order_key]
    assert len(mine) == 1
    # AND a second sweep does not send it again
    grants.resend_unsent()
    assert [m for m in credit_messages_of(campaign) if parse_credit_message(m).order_key == order.order_key] == []
    # WHEN the message is delivered THEN the order is credited once
    _, failed = run_credit_worker(mine)
    assert failed == []
    assert order_item(campaign, body["order_id"]).status == CREDITED
    sums = ledger_sums(wallet_id_of(campaign, "u1"))
    assert (sums.credits, len(sums.credited_orders)) == (77, 1)
    assert distributed(campaign) == (77, 1)


class SqsRefusingOneEntry:
    """The real SQS client, except that every batch send reports its entry "1" as failed (SQS answers
    per entry: a batch can half succeed)."""

    def __init__(self, real) -> None:
        self.real = real

    def send_message_batch(self, QueueUrl: str, Entries: list) -> dict:
        kept = [e for e in Entries if e["Id"] != "1"]
        answer = self.real.send_message_batch(QueueUrl=QueueUrl, Entries=kept) if kept else {}
        failed = [{"Id": "1", "SenderFault": False, "Code": "InternalError"}] if len(kept) < len(Entries) else []
        return {**answer, "Failed": failed}


def test_grant_batch__one_send_of_a_batch_fails__only_that_order_flagged_sweeper_completes(client, campaign,
                                                                                          monkeypatch):
    purge_credits()
    real_client = clients.sqs()
    monkeypatch.setattr(clients, "sqs", lambda: SqsRefusingOneEntry(real_client))
    items = [campaign.grant_body(f"u{n}", amount=10 + n) for n in range(3)]
    status, answer = call(client, "POST", "/v1/grants/batch", {"grants": items})
    monkeypatch.undo()
    assert status == 200 and [r["status"] for r in answer["results"]] == [202, 202, 202]
    flagged = [n for n in range(3) if order_item(campaign, order_id_of(campaign, f"u{n}")).unsent_bucket]
    assert flagged == [1]
    grants.resend_unsent()
    mine = credit_messages_of(campaign)
    assert sorted(parse_credit_message(m).act_id for m in mine) == ["u0", "u1", "u2"]
    assert run_credit_worker(mine)[1] == []
    assert [ledger_sums(wallet_id_of(campaign, f"u{n}")).credits for n in range(3)] == [10, 11, 12]
