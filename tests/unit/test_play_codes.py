"""Identity codes, open ids and game tokens (chalicelib.play.codes)."""

from __future__ import annotations

import os

import pytest

from chalicelib.play import codes

KEYS = codes.PlayKeys.from_master(b"\x01" * 32)
OTHER_KEYS = codes.PlayKeys.from_master(b"\x02" * 32)


def test_identity_code__same_anchor_and_generation__same_12_character_code():
    code = codes.identity_code(KEYS, 42, 1)
    assert code == codes.identity_code(KEYS, 42, 1)
    assert len(code) == 12 and set(code) <= set(codes.CROCKFORD)


def test_identity_code__next_generation_other_anchor_other_key__all_differ():
    seen = {codes.identity_code(KEYS, 42, 1), codes.identity_code(KEYS, 42, 2), codes.identity_code(KEYS, 43, 1),
            codes.identity_code(OTHER_KEYS, 42, 1)}
    assert len(seen) == 4


def test_normalize_code__as_typed__read_back():
    code = codes.identity_code(KEYS, 7, 3)
    typed = f" {code[:4].lower()}-{code[4:8]} {code[8:]} "
    assert codes.normalize_code(typed) == code
    assert codes.normalize_code(code.replace("1", "I")) == code
    assert codes.normalize_code("short") is None
    assert codes.normalize_code("U" * 12) is None  # U is not in Crockford's alphabet


def test_code_lookup__keyed__not_the_code_and_not_shared_across_keys():
    code = codes.identity_code(KEYS, 7, 1)
    lookup = codes.code_lookup(KEYS, code)
    assert code not in lookup and len(lookup) == 64
    assert lookup != codes.code_lookup(OTHER_KEYS, code)


def test_open_id__per_app_and_anchor__stable_uuid_never_the_uid():
    first = codes.open_id(KEYS, 1001, 777)
    assert first == codes.open_id(KEYS, 1001, 777)
    assert first != codes.open_id(KEYS, 1002, 777) != codes.open_id(KEYS, 1001, 778)
    assert len(first) == 36 and "777" not in first.replace("-", "")[:3]


def test_game_token__signed__verifies_with_its_claims_until_expiry():
    token = codes.sign_game_token(KEYS, "g-1", 1001, 555, expires_at_ms=2_000)
    assert codes.verify_game_token(KEYS, token, now_ms=1_999) == {
        "game_id": "g-1", "app_id": 1001, "room_id": 555, "exp_ms": 2_000}
    with pytest.raises(codes.InvalidGameToken, match="expired"):
        codes.verify_game_token(KEYS, token, now_ms=2_000)


def test_game_token__tampered_or_other_key_or_garbage__refused():
    token = codes.sign_game_token(KEYS, "g-1", 1001, 555, expires_at_ms=10**15)
    version, body, mac = token.split(".")
    forged_body = codes._b64(b'{"app_id":1001,"exp_ms":1000000000000000,"game_id":"g-2","room_id":555}')
    for bad in (f"{version}.{forged_body}.{mac}", f"{version}.{body}.{codes._b64(os.urandom(32))}",
                "v2." + body + "." + mac, "not-a-token", f"{version}.{body}.***"):
        with pytest.raises(codes.InvalidGameToken):
            codes.verify_game_token(KEYS, bad, now_ms=0)
    with pytest.raises(codes.InvalidGameToken):
        codes.verify_game_token(OTHER_KEYS, token, now_ms=0)


def test_play_keys__short_master__refused():
    with pytest.raises(ValueError, match="32 bytes"):
        codes.PlayKeys.from_master(b"short")
