"""Hostile input at the HTTP edge, as unit tests: odd token shapes, non-ASCII digits, floods of unknown tp app
ids, storage failures and missing keys (each failed on the code before its fix: TypeError, RecursionError,
ValueError, UnknownTpApp, 5 000 remembered misses and reads, `cause` and `secret` in the body). The functional
tests assert the same through the routes."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import ValidationError

from chalicelib import errors, process_state, secrets
from chalicelib.http import problem_body
from chalicelib.rewards import tokens
from chalicelib.rewards.models import FlowQuery


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


KEY = tokens.key_from_secret(tokens.new_secret_value("k1"))


@pytest.mark.parametrize("claims", [{"kid": []}, {"kid": {"a": 1}}])
def test_verify__kid_not_a_string__invalid_token_not_a_crash(claims):
    with pytest.raises(errors.InvalidToken):
        tokens.verify(f"{b64(json.dumps(claims).encode())}.AAAA", KEY.public_keys)


def test_verify__deeply_nested_claims__invalid_token_not_a_recursion_error():
    deep = b64(b'{"kid":"k1","y":' + b"[" * 1400 + b"]" * 1400 + b"}")
    with pytest.raises(errors.InvalidToken):
        tokens.verify(f"{deep}.AAAA", KEY.public_keys)


@pytest.mark.parametrize("limit", ["²", "٣", " 5", "5.0", "1e1"])
def test_query_limit__not_ascii_digits__a_validation_error_not_a_crash(limit):
    with pytest.raises(ValidationError):
        FlowQuery.model_validate({"activity_id": "a", "limit": limit})
    assert FlowQuery.model_validate({"activity_id": "a", "limit": "7"}).limit == 7


def test_callback__unknown_tp_app__the_same_rejection_as_a_forged_one(monkeypatch):
    from chalicelib.callbacks import gateway

    monkeypatch.setattr(gateway, "get_tp_app", lambda _id: None)
    body = json.dumps({"TimeStamp": "1", "Nonce": "1", "Encrypt": "a", "MsgSignature": "b"})
    with pytest.raises(errors.CallbackRejected) as caught:
        gateway.receive("tt-unknown", "auth", body)
    assert caught.value.reason == "unknown_tp_app"


def test_secrets__budget__refills_at_its_rate():
    now = {"s": 0.0}
    budget = secrets._LookupBudget(5.0, 2, clock=lambda: now["s"])
    assert [budget.take() for _ in range(3)] == [True, True, False]
    now["s"] = 0.1  # half a token
    assert budget.take() is False
    now["s"] = 0.3  # 1.5 tokens
    assert [budget.take(), budget.take()] == [True, False]


def test_secrets__flood_of_unknown_names__bounded_memory_and_reads(monkeypatch):
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    reads = []

    class NotFound:
        def get(self, name, **_):
            reads.append(name)
            raise GetParameterError("ResourceNotFoundException")

    process_state.reset()
    monkeypatch.setattr(secrets, "_secrets", lambda: NotFound())
    monkeypatch.setattr(secrets, "_budget", secrets._LookupBudget(secrets.LOOKUPS_PER_S, secrets.LOOKUP_BURST,
                                                                   clock=lambda: 0.0))
    for n in range(5000):
        assert secrets.get_secret_json(f"rewardgate/local/tp-apps/forged{n}", budgeted=True) is None
    print(f"forged ids=5000 secret reads={len(reads)} remembered misses={secrets.miss_cache_size()}")
    assert secrets.miss_cache_size() <= secrets.MISS_CACHE_MAX
    assert len(reads) == secrets.LOOKUP_BURST
    process_state.reset()


def test_storage_failure__no_internal_cause_in_the_body():
    from botocore.exceptions import ClientError
    from pynamodb.exceptions import GetError

    from chalicelib.dynamo import with_retries

    def broken():
        raise GetError("x", cause=ClientError({"Error": {"Code": "InternalServerError", "Message": "m"}}, "GetItem"))

    with pytest.raises(errors.StorageUnavailable) as caught:
        with_retries(broken, attempts=1)
    assert caught.value.details == {"cause": "InternalServerError"}  # kept for the log
    assert problem_body(caught.value) == {
        "type": "urn:rewardgate:problem:storage_unavailable",
        "title": "The database failed for a reason a retry may cure", "status": 503,
        "code": "storage_unavailable", "detail": "a backing service is unavailable; retry later"}


def test_signing_key_missing__no_secret_name_in_the_body(monkeypatch):
    monkeypatch.setattr(tokens, "get_secret_json", lambda name, **_: None)
    with pytest.raises(errors.StorageUnavailable) as caught:
        tokens.signing_key()
    assert "secret" not in problem_body(caught.value)
    assert "reward-token-key" not in json.dumps(problem_body(caught.value))


# --- non-ASCII digits that `str.isdigit` accepts (the places a first pass over them missed) --------------------

SUPERSCRIPTS = "¹²³⁴⁵⁶⁷⁸⁹⁰¹²³"  # 13 characters, each `isdigit()`; `int()` refuses them
ARABIC_INDIC = "\u0661\u0667" + "\u0660" * 11  # 13 characters, each `isdigit()`; `int()` reads them as 1700000000000


@pytest.mark.parametrize("at", [SUPERSCRIPTS, ARABIC_INDIC])
def test_flow_cursor__other_digits_than_ascii__invalid_field_not_a_crash(at):
    from chalicelib.rewards import wallets

    cursor = b64(f"{at}#credit#x".encode())
    with pytest.raises(errors.InvalidField) as refused:
        wallets.decode_flow_cursor(cursor)
    assert refused.value.details["field"] == "cursor"
    # a cursor this listing hands out still decodes
    assert wallets.decode_flow_cursor(wallets.encode_flow_cursor("1700000000000#credit#x")) == "1700000000000#credit#x"


@pytest.mark.parametrize("stamp", ["²", SUPERSCRIPTS[:10], ARABIC_INDIC[:10]])
def test_play_timestamp__other_digits_than_ascii__refused_as_out_of_window_not_a_crash(stamp):
    from chalicelib.errors import TimestampOutOfWindow
    from chalicelib.play import signing

    request = signing.SignedRequest(headers={signing.TIMESTAMP: stamp}, authorization="x")
    with pytest.raises(TimestampOutOfWindow):
        signing.check_timestamp(request, 1_700_000_000, 300)


@pytest.mark.parametrize("expires_in", ["²", "\u0663"])
def test_callback_authorization_expiry__other_digits_than_ascii__malformed_not_a_crash(expires_in):
    from chalicelib.callbacks import events

    with pytest.raises(events.Malformed):
        events._expires_in({"AuthorizationCodeExpiresIn": expires_in})


def test_listing_cursor__json_nested_too_deeply__invalid_field_not_a_recursion_error():
    from chalicelib import validate

    with pytest.raises(errors.InvalidField) as refused:
        validate.decode_cursor(b64(b"[" * 1500), {"event_id": ""})
    assert refused.value.details["field"] == "cursor"
