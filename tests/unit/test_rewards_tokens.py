"""Reward tokens (`chalicelib.rewards.tokens`): compact JWS with EdDSA, verifiable with the public JWKS alone;
the former two-part format keeps verifying."""

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


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def parts(token: str) -> list[str]:
    return token.split(".")


def test_sign_verify__round_trip__claims_back_with_the_key_id(key):
    token = tokens.sign(CLAIMS, key)
    assert len(parts(token)) == 3
    assert tokens.verify(token, key.public_keys) == {**CLAIMS, "v": 2, "kid": "k1"}


def test_sign__header__eddsa_with_the_key_id():
    key = tokens.key_from_secret(tokens.new_secret_value("k9"))
    header = json.loads(base64.urlsafe_b64decode(parts(tokens.sign(CLAIMS, key))[0] + "=="))
    assert header == {"alg": "EdDSA", "kid": "k9", "typ": "JWT"}


def test_sign__deterministic__a_repeat_yields_the_identical_token(key):
    assert tokens.sign(CLAIMS, key) == tokens.sign(dict(reversed(list(CLAIMS.items()))), key)


def test_verify__public_key_alone__suffices(key):
    public_only = {"k1": tokens.load_public_key(tokens.public_key_b64(key.public_keys["k1"]))}
    assert tokens.verify(tokens.sign(CLAIMS, key), public_only)["amount"] == 300


def test_verify__independent_jose_library_with_the_jwks__verifies_the_same_claims(key):
    # PyJWT shares no code with joserfc (which signs): any JOSE library must accept the token and the JWKS.
    import jwt

    token = tokens.sign(CLAIMS, key)
    (jwk,) = tokens.jwks(key)["keys"]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"], jwk["kid"]) == ("OKP", "Ed25519", "EdDSA", "sig", "k1")
    decoded = jwt.decode(token, key=jwt.PyJWK(jwk).key, algorithms=["EdDSA"])
    assert decoded == {**CLAIMS, "v": 2}
    with pytest.raises(jwt.InvalidSignatureError):
        other = tokens.jwks(tokens.key_from_secret(tokens.new_secret_value("k1")))["keys"][0]
        jwt.decode(token, key=jwt.PyJWK(other).key, algorithms=["EdDSA"])


def test_verify__token_signed_by_an_independent_jose_library__verifies(key):
    import jwt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    foreign = Ed25519PrivateKey.generate()
    token = jwt.encode({**CLAIMS, "v": 2}, foreign, algorithm="EdDSA", headers={"kid": "kx"})
    assert tokens.verify(token, {"kx": foreign.public_key()})["order_id"] == CLAIMS["order_id"]


def test_verify__any_byte_of_the_claims_flipped__invalid(key):
    header, body, signature = parts(tokens.sign(CLAIMS, key))
    length = len(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    for index in range(length):
        with pytest.raises(InvalidToken):
            tokens.verify(f"{header}.{flip(body, index)}.{signature}", key.public_keys)


def test_verify__any_byte_of_the_signature_flipped__invalid(key):
    header, body, signature = parts(tokens.sign(CLAIMS, key))
    for index in range(64):
        with pytest.raises(InvalidToken) as refused:
            tokens.verify(f"{header}.{body}.{flip(signature, index)}", key.public_keys)
        assert refused.value.message == "token signature does not verify"


def test_verify__amount_raised_and_re_encoded__invalid(key):
    header, _, signature = parts(tokens.sign(CLAIMS, key))
    forged = json.dumps({**CLAIMS, "v": 2, "amount": 30000}, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(InvalidToken):
        tokens.verify(f"{header}.{b64(forged)}.{signature}", key.public_keys)


def test_verify__alg_none_or_another_alg__invalid(key):
    _, body, signature = parts(tokens.sign(CLAIMS, key))
    for alg in ("none", "HS256", "Ed25519"):
        header = b64(json.dumps({"alg": alg, "kid": "k1", "typ": "JWT"}).encode())
        with pytest.raises(InvalidToken):
            tokens.verify(f"{header}.{body}.{signature}", key.public_keys)
        with pytest.raises(InvalidToken):
            tokens.verify(f"{header}.{body}.", key.public_keys)


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
    assert [k["kid"] for k in tokens.jwks(rotated)["keys"]] == ["k2", "k1"]


def test_verify__legacy_two_part_token__still_verifies_until_its_key_is_retired(key):
    legacy = tokens.sign_legacy(CLAIMS, key)
    assert len(parts(legacy)) == 2
    assert tokens.verify(legacy, key.public_keys) == {**CLAIMS, "kid": "k1"}
    with pytest.raises(InvalidToken) as refused:
        tokens.verify(legacy, {"k2": key.public_keys["k1"]})  # k1 retired: only k2 is listed
    assert refused.value.message == "token was signed by an unknown key"
    body, signature = parts(legacy)
    with pytest.raises(InvalidToken):
        tokens.verify(f"{flip(body, 3)}.{signature}", key.public_keys)


@pytest.mark.parametrize("claims", [
    {k: v for k, v in CLAIMS.items() if k != "amount"},
    {**CLAIMS, "extra": 1},
])
def test_verify__signed_but_not_a_reward_token__invalid(key, claims):
    with pytest.raises(InvalidToken):
        tokens.verify(tokens.sign(claims, key), key.public_keys)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "!!!.???", "e30.", None, 42, "a.b.c.d", "x" * 5000,
                                   base64.urlsafe_b64encode(b"[1]").decode() + ".AAAA"])
def test_verify__malformed__invalid(key, token):
    with pytest.raises(InvalidToken):
        tokens.verify(token, key.public_keys)


# Each of these reached a 500 (TypeError, RecursionError) before the fix.
@pytest.mark.parametrize("claims", [{"kid": []}, {"kid": {"a": 1}}, {"kid": 7}])
def test_verify__legacy_kid_not_a_string__invalid_token_not_a_crash(key, claims):
    with pytest.raises(InvalidToken) as refused:
        tokens.verify(f"{b64(json.dumps(claims).encode())}.AAAA", key.public_keys)
    assert refused.value.message == "token was signed by an unknown key"


def test_verify__jws_kid_not_a_string__invalid_token_not_a_crash(key):
    header = b64(json.dumps({"alg": "EdDSA", "kid": []}).encode())
    with pytest.raises(InvalidToken):
        tokens.verify(f"{header}.e30.AAAA", key.public_keys)


@pytest.mark.parametrize("shape", ["legacy", "jws"])
def test_verify__deeply_nested_claims__invalid_token_not_a_recursion_error(key, shape):
    # 1 400 levels fit in a 4 096-character token and exceed CPython's JSON recursion limit.
    deep = b64(b'{"kid":"k1","y":' + b"[" * 1400 + b"]" * 1400 + b"}")
    token = f"{deep}.AAAA" if shape == "legacy" else f"{b64(b'{}')}.{deep}.AAAA"
    assert len(token) <= 4096
    with pytest.raises(InvalidToken):
        tokens.verify(token, key.public_keys)
    header = b64(b'{"alg":"EdDSA","kid":' + b"[" * 1400 + b"]" * 1400 + b"}")
    with pytest.raises(InvalidToken):
        tokens.verify(f"{header}.e30.AAAA", key.public_keys)
