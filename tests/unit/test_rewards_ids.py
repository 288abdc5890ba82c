"""Identity and placement (`chalicelib.rewards.ids`): order ids, keys, shard order, buckets, gray admission."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.rewards import ids
from tests.conftest import ROOT

IDENTS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.-]{0,15}", fullmatch=True)


def test_order_id__is_the_documented_tuple_joined_by_underscores():
    assert ids.order_id("user1", "scene7", "rain3", "cash", "2") == "user1_scene7_rain3_cash_2"


@given(a=st.tuples(IDENTS, IDENTS, IDENTS, st.sampled_from(ids.AWARD_TYPES), IDENTS),
       b=st.tuples(IDENTS, IDENTS, IDENTS, st.sampled_from(ids.AWARD_TYPES), IDENTS))
def test_order_key__different_tuples__never_the_same_key(a, b):
    # GIVEN two grant tuples of valid identifiers (which can never contain a separator)
    # WHEN both are turned into order keys in the same child THEN the keys collide only if the tuples are equal
    ns = ids.child_ns("act", "formal")
    assert (ids.order_key(ns, ids.order_id(*a)) == ids.order_key(ns, ids.order_id(*b))) == (a == b)


@given(grant=st.tuples(IDENTS, IDENTS, IDENTS, st.sampled_from(ids.AWARD_TYPES), IDENTS),
       asset=st.sampled_from(["CNY", "coupon:tpl-1.a"]))
def test_order_wallet_id__any_order_id__the_wallet_of_the_user_who_was_granted(grant, asset):
    # GIVEN an order id of a valid grant tuple WHEN its wallet is derived from the id alone (reservation journals)
    ns = ids.child_ns("act", "formal")
    # THEN it is the wallet of the grant's user, for the scene's asset
    assert ids.order_wallet_id(ns, ids.order_id(*grant), asset) == f"act/formal#{grant[0]}#{asset}"


def test_keys__children_and_assets__never_share_a_wallet_or_counter():
    formal, gray = ids.child_ns("act1", "formal"), ids.child_ns("act1", "gray")
    assert ids.wallet_id(formal, "u1", "CNY") != ids.wallet_id(gray, "u1", "CNY")
    assert ids.wallet_id(formal, "u1", "CNY") != ids.wallet_id(formal, "u1", ids.asset_of("coupon", "tpl1"))
    assert ids.stock_counter_id(formal, "s1") != ids.stock_counter_id(gray, "s1")
    assert ids.distributed_counter_id(formal, "CNY") != ids.distributed_counter_id(gray, "CNY")
    assert ids.asset_of("cash", None) == "CNY"
    assert ids.asset_of("coupon", "tpl1") == "coupon:tpl1"


@given(key=st.text(min_size=1, max_size=40), shard_count=st.integers(1, 64))
def test_shard_order__any_key__tries_every_shard_exactly_once_starting_at_a_stable_home(key, shard_count):
    order = ids.shard_order(key, shard_count)
    assert sorted(order) == list(range(shard_count))
    assert order == ids.shard_order(key, shard_count)
    # consecutive after the home shard, wrapping around
    assert order == [(order[0] + step) % shard_count for step in range(shard_count)]


def test_shard_order__no_shards__nothing_to_try():
    assert ids.shard_order("k", 0) == []


def test_shard_order__many_keys__home_shards_spread_over_every_shard():
    homes = [ids.shard_order(f"act/formal#u{i}_s_r_cash_1", 8)[0] for i in range(4000)]
    counts = [homes.count(s) for s in range(8)]
    # 500 expected per shard; a fair hash stays well inside +-20 %
    assert min(counts) > 400 and max(counts) < 600, counts


def test_hashing__same_in_another_process_with_another_hash_seed():
    # A shard choice or a gray admission that changed between Lambda instances would move users around.
    keys = [f"user{i}" for i in range(50)]
    script = ("import json,sys; from chalicelib.rewards import ids; keys=json.loads(sys.argv[1]); "
              "print(json.dumps([[ids.shard_order(k, 7), ids.bucket_of(k, 16), ids.gray_admits(k, 37)] "
              "for k in keys]))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", script, json.dumps(keys)], capture_output=True, text=True,
                         env=env, cwd=ROOT, check=True).stdout
    here = [[ids.shard_order(k, 7), ids.bucket_of(k, 16), ids.gray_admits(k, 37)] for k in keys]
    assert json.loads(out) == here


@given(key=st.text(max_size=40), buckets=st.integers(1, 64))
def test_bucket_of__any_key__within_range(key, buckets):
    assert 0 <= ids.bucket_of(key, buckets) < buckets


def test_gray_admits__bounds_monotone_and_proportional():
    users = [f"user{i}" for i in range(5000)]
    assert not any(ids.gray_admits(u, 0) for u in users)
    assert all(ids.gray_admits(u, 100) for u in users)
    # raising the percentage only ever adds users (nobody loses access during a rollout)
    for low, high in ((10, 11), (30, 60), (99, 100)):
        assert all(ids.gray_admits(u, high) for u in users if ids.gray_admits(u, low))
    admitted = sum(ids.gray_admits(u, 30) for u in users)
    assert 1300 < admitted < 1700, admitted
