"""Parsing the outer callback JSON, and the timestamp window."""

from __future__ import annotations

import json

import pytest

from chalicelib.callbacks.envelope import parse_envelope
from chalicelib.callbacks.gateway import check_fresh
from chalicelib.errors import CallbackRejected, InvalidField, InvalidJson, PayloadTooLarge
from chalicelib.http import problem_body
from tests.problems import problem

LIMIT = 64 * 1024
GOOD = {"TimeStamp": "1700000000", "Nonce": "abc", "Encrypt": "ZW5j", "MsgSignature": "f" * 40}


def test_envelope__numbers_for_timestamp_and_nonce__kept_as_their_exact_text():
    # GIVEN TimeStamp and Nonce sent as JSON numbers, one written with a trailing zero
    raw = b'{"TimeStamp": 1700000000, "Nonce": 12345.50, "Encrypt": "ZW5j", "MsgSignature": "ab"}'
    # WHEN parsed
    envelope = parse_envelope(raw, LIMIT)
    # THEN the text that was signed is kept verbatim
    assert (envelope.timestamp, envelope.nonce) == ("1700000000", "12345.50")
    assert envelope.timestamp_s == 1700000000


@pytest.mark.parametrize("field", ["TimeStamp", "Nonce", "Encrypt", "MsgSignature"])
def test_envelope__field_missing__invalid_field_names_it(field):
    body = {k: v for k, v in GOOD.items() if k != field}
    with pytest.raises(InvalidField) as caught:
        parse_envelope(json.dumps(body).encode(), LIMIT)
    assert problem_body(caught.value) == problem('invalid_field', f'{field}: is required', field=field)


@pytest.mark.parametrize("field", ["TimeStamp", "Nonce", "Encrypt", "MsgSignature"])
@pytest.mark.parametrize("value", [True, {"a": 1}, [1]])
def test_envelope__field_of_wrong_type__invalid_field_names_it(field, value):
    with pytest.raises(InvalidField) as caught:
        parse_envelope(json.dumps({**GOOD, field: value}).encode(), LIMIT)
    assert caught.value.details["field"] == field


@pytest.mark.parametrize("field", ["Encrypt", "MsgSignature"])
def test_envelope__number_where_only_text_is_signed__invalid_field(field):
    with pytest.raises(InvalidField) as caught:
        parse_envelope(json.dumps({**GOOD, field: 123}).encode(), LIMIT)
    assert caught.value.message == f"{field}: must be a string"


@pytest.mark.parametrize("value", ["17e8", "-5", "1700000000.5", "soon"])
def test_envelope__timestamp_not_whole_seconds__invalid_field(value):
    with pytest.raises(InvalidField) as caught:
        parse_envelope(json.dumps({**GOOD, "TimeStamp": value}).encode(), LIMIT)
    assert caught.value.details["field"] == "TimeStamp"


def test_envelope__over_the_limit__payload_too_large_before_parsing():
    # GIVEN a body one byte over the limit that is not even JSON
    with pytest.raises(PayloadTooLarge):
        parse_envelope(b"x" * (LIMIT + 1), LIMIT)


@pytest.mark.parametrize(("raw", "message"), [
    (b"", "request body is empty; expected a JSON object"),
    (b"not json", "request body is not valid JSON"),
    (b"\xff\xfe\x00", "request body is not valid JSON"),
    (b"[1, 2]", "request body must be a JSON object"),
    (b"[" * 10_000 + b"]" * 10_000, "request body is nested too deeply"),
    (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "request body is nested too deeply"),
])
def test_envelope__not_a_json_object__invalid_json(raw, message):
    with pytest.raises(InvalidJson) as caught:
        parse_envelope(raw, 10**6)
    assert caught.value.message == message


@pytest.mark.parametrize(("offset_s", "reason"), [(-301, "stale_timestamp"), (301, "future_timestamp")])
def test_check_fresh__outside_window__rejected(offset_s, reason):
    now_ms = 1_700_000_000_000
    with pytest.raises(CallbackRejected) as caught:
        check_fresh(1_700_000_000 + offset_s, now_ms, 300)
    assert caught.value.reason == reason


@pytest.mark.parametrize("offset_s", [-300, 0, 300])
def test_check_fresh__inside_window__passes(offset_s):
    assert check_fresh(1_700_000_000 + offset_s, 1_700_000_000_000, 300) is None
