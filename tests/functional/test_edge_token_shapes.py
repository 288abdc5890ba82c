"""Reward tokens of hostile shapes presented to a withdrawal: 400 invalid_token naming the index, nothing debited,
never a 5xx (`{"kid": []}` and deeply nested claims, in both token formats)."""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import uid
from tests.rewards_support import (
    call,
    deliver_credits,
    grant_direct,
    ledger_sums,
    make_campaign,
    wallet_id_of,
    wallet_item,
    withdrawal_body,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


DEEP = b"[" * 1400 + b"]" * 1400  # deeper than json's recursion limit; the token stays under 4096 characters


def legacy(claims: bytes) -> str:
    return f"{b64(claims)}.AAAA"


def jws(header: bytes, claims: bytes) -> str:
    return f"{b64(header)}.{b64(claims)}.AAAA"


SHAPES = {
    "legacy kid list": legacy(json.dumps({"kid": []}).encode()),
    "legacy kid object": legacy(json.dumps({"kid": {"a": 1}}).encode()),
    "legacy nested claims": legacy(b'{"kid":"k1","y":' + DEEP + b"}"),
    "jws kid list": jws(json.dumps({"alg": "EdDSA", "kid": []}).encode(), b"{}"),
    "jws nested header": jws(b'{"alg":"EdDSA","kid":' + DEEP + b"}", b"{}"),
    "jws nested claims": jws(json.dumps({"alg": "EdDSA", "kid": "test-key-1"}).encode(), DEEP),
}
assert all(len(token) <= 4096 for token in SHAPES.values())


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_withdraw__hostile_token_shape__400_invalid_token_at_its_index_nothing_debited(client, shape):
    # GIVEN a user with 300 credited
    campaign = make_campaign(client)
    user = uid("u")
    assert grant_direct(campaign.grant_body(user, amount=300))[0] == 202
    deliver_credits()
    # WHEN a withdrawal presents a valid-looking list whose second token has a hostile shape
    body = withdrawal_body(campaign, 100, tokens_=[SHAPES[shape]] * 2)
    status, answer = call(client, "POST", f"/v1/wallets/{user}/withdrawals", body)
    # THEN it is refused as an invalid token at index 0, and nothing is debited
    assert (status, answer["code"], answer["index"]) == (400, "invalid_token", 0)
    assert int(wallet_item(wallet_id_of(campaign, user)).balance) == 300
    assert ledger_sums(wallet_id_of(campaign, user)).withdrawals == 0
