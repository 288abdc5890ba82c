"""Reward tokens (`chalicelib.rewards.tokens`): Ed25519 over the claims, verifiable with the public key alone."""

from __future__ import annotations

import base64
import json

import pytest

from chalicelib.errors import InvalidToken
from chalicelib.rewards import tokens

CLAIMS = {"v": 1, "app_id": "rewardgate", "activity_id": "act1", "sub_activity_id": "formal", "act_id": "user1",
          "scene_id": "s1", "award_type": "cash", "asset": "CNY", "amount": 300, "order_id": "user1_s1_r9_cash_2",
          "open_time_ms": 1_714_536_000_000, "rain_id": "r9", "stage": "2"}


@pytest.fixture(scope="module")
def key() -> tokens.SigningKey:
    return tokens.key_from_secret(tokens.new_secret_value("k1"))


def flip(text: str, index: int) -> str:
    """The base64url part with one byte of its decoded content flipped."""
    raw = bytearray(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def test_sign_verify__round_trip__claims_back_with_the_key_id(key):
    token = tokens.sign(CLAIMS, key)
    assert tokens.verify(token, key.public_keys) == {**CLAIMS, "kid": "k1"}


def test_sign__deterministic__a_repeat_yields_the_identical_token(key):
    assert tokens.sign(CLAIMS, key) == tokens.sign(dict(reversed(list(CLAIMS.items()))), key)


def test_verify__public_key_alone__suffices(key):
    public_only = {"k1": tokens.load_public_key(tokens.public_key_b64(key.public_keys["k1"]))}
    assert tokens.verify(tokens.sign(CLAIMS, key), public_only)["amount"] == 300


def test_verify__any_byte_of_the_claims_flipped__invalid(key):
    body, signature = tokens.sign(CLAIMS, key).split(".")
    length = len(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    for index in range(length):
        with pytest.raises(InvalidToken):
            tokens.verify(f"{flip(body, index)}.{signature}", key.public_keys)


def test_verify__any_byte_of_the_signature_flipped__invalid(key):
    body, signature = tokens.sign(CLAIMS, key).split(".")
    for index in range(64):
        with pytest.raises(InvalidToken) as refused:
            tokens.verify(f"{body}.{flip(signature, index)}", key.public_keys)
        assert refused.value.message == "token signature does not verify"


def test_verify__amount_raised_and_re_encoded__invalid(key):
    _, signature = tokens.sign(CLAIMS, key).split(".")
    forged = json.dumps({**CLAIMS, "kid": "k1", "amount": 30000}, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(InvalidToken):
        tokens.verify(f"{base64.urlsafe_b64encode(forged).decode().rstrip('=')}.{signature}", key.public_keys)


def test_verify__unknown_or_other_key__invalid(key):
    other = tokens.key_from_secret(tokens.new_secret_value("k2"))
    with pytest.raises(InvalidToken) as refused:
        tokens.verify(tokens.sign(CLAIMS, other), key.public_keys)
    assert refused.value.message == "token was signed by an unknown key"
    # another key that claims our kid
    impostor = tokens.key_from_secret(tokens.new_secret_value("k1"))
    with pytest.raises(InvalidToken):
        tokens.verify(tokens.sign(CLAIMS, impostor), key.public_keys)


def test_verify__rotated_key__old_tokens_still_verify_with_the_previous_public_key(key):
    old_token = tokens.sign(CLAIMS, key)
    rotated_secret = {**tokens.new_secret_value("k2"), "previous_public_keys": [
        {"kid": "k1", "public_key": tokens.public_key_b64(key.public_keys["k1"])}]}
    rotated = tokens.key_from_secret(rotated_secret)
    assert tokens.verify(old_token, rotated.public_keys)["kid"] == "k1"
    assert tokens.verify(tokens.sign(CLAIMS, rotated), rotated.public_keys)["kid"] == "k2"


@pytest.mark.parametrize("claims", [
    {k: v for k, v in CLAIMS.items() if k != "amount"},
    {**CLAIMS, "extra": 1},
    {**CLAIMS, "v": 2},
])
def test_verify__signed_but_not_a_v1_reward_token__invalid(key, claims):
    with pytest.raises(InvalidToken):
        tokens.verify(tokens.sign(claims, key), key.public_keys)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "!!!.???", "e30.", None, 42,
                                   base64.urlsafe_b64encode(b"[1]").decode() + ".AAAA"])
def test_verify__malformed__invalid(key, token):
    with pytest.raises(InvalidToken):
        tokens.verify(token, key.public_keys)
