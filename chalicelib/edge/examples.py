"""Documented examples, derived from the JSON schemas of the contract when an operation gives none.

`example(schema, defs)` builds one deterministic value that satisfies the schema: the schema's own
`examples`/`default`/`const`/first `enum` value when it has one, else the smallest value within its bounds,
with strings chosen from the property's name (an identifier pattern gets `act-id` for `act_id`). A pattern
this module does not know raises: give that operation an explicit example (`operation(examples=...)`), so
no example in the document is a guess that its own schema refuses. The contract test validates every
example against its schema and every request example against the server's model.
"""

from __future__ import annotations

import re
from typing import Any

from chalicelib.edge.models import IDENT_PATTERN

# Known patterns -> a value that matches (checked by `_string`).
PATTERN_VALUES = {
    IDENT_PATTERN: "id-1",
    r"^[1-9][0-9]{0,15}$": "1024",
    r"^(CNY|coupon:[A-Za-z0-9][A-Za-z0-9.-]{0,63})$": "CNY",
    r"^[0-9]{4}-?[0-9]{2}-?[0-9]{2}T?[0-9]{2}$": "2026-12-08T10",
    r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$": "req-2026-12-08-0001",
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$": "2026-12-08",
    r"^[A-Za-z0-9_.-]{1,64}$": "id-1",
}
EPOCH_MS = 1_796_716_800_000  # 2026-12-08T08:00:00Z
# Strings a property of this name holds (when its schema's pattern, if any, accepts them).
NAMED_STRINGS = {
    "alg": "Ed25519", "currency": "CNY", "asset": "CNY", "kty": "OKP", "crv": "Ed25519", "use": "sig",
    "message": "ok", "request_id": "8d1f0c3e2b7a4f6e9c5d1a2b3c4d5e6f", "uname": "streamer", "name": "spring-rain",
    "code": "C8R2K9QF4M", "act_id": "user-42", "activity_id": "spring-2027", "scene_id": "rain-1", "rain_id": "r7",
    "sub_activity_id": "formal", "order_id": "user-42_rain-1_r7_cash_1", "stage": "1", "hour": "2026-12-08T10",
    "day": "2026-12-08", "game_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "open_id": "a1b2c3d4-open-id",
    "kid": "k-2026-12", "current_kid": "k-2026-12", "public_key": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "token": "eyJhbGciOiJFZERTQSJ9.eyJvcmRlcl9pZCI6Ii4uLiJ9.c2ln",
    "wss_link": "ws://127.0.0.1:8003", "auth_body": '{"game_id":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"}',
    "uface": "https://example.com/face.jpg", "cmd": "LIVE_OPEN_PLATFORM_DM", "msg_id": "m-1001",
    "bill_text": "Spring red-packet rain", "template_id": "tpl-1", "event_type": "AUTHORIZED", "event_id": "e-1001",
    "tp_app_id": "tp-1", "app_id": "tt-app-1", "payout_ref": "pay-1001", "TimeStamp": "1796716800",
    "Nonce": "1320562132", "Encrypt": "QmFzZTY0IG9mIHRoZSBBRVMtQ0JDIGNpcGhlcnRleHQ=",
    "MsgSignature": "3d2a9c1f0e8b7a6d5c4b3a29181f0e1d2c3b4a59", "access_key_id": "ak-1001",
    "event_time": "2026-12-08 16:00:00", "received_at": "2026-12-08 16:00:00",
}
# Integers a property of this name holds (within its bounds).
NAMED_INTS = {"code": 0, "amount": 100, "total": 100_000, "price": 1000, "amount_fen": 100, "balance": 100,
              "room_id": 21_452_505, "anchor_id": 9_001, "uid": 9_001, "app_id": 1_001, "share_bp": 3_000}


class UnknownPattern(ValueError):
    """A string pattern with no known example value."""


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _string(schema: dict[str, Any], name: str) -> str:
    pattern = schema.get("pattern")
    candidates = [NAMED_STRINGS.get(name, ""), name.replace("_", "-"), "example"]
    if pattern is not None:
        if pattern not in PATTERN_VALUES:
            raise UnknownPattern(f"no example for pattern {pattern!r} ({name}): declare one on the operation")
        candidates = [c for c in candidates if c and re.search(pattern, c)] + [PATTERN_VALUES[pattern]]
    value = next(c for c in candidates if c)
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    value = value.ljust(low, "x")
    return value[:high] if high is not None else value


def _number(schema: dict[str, Any], name: str) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
    high = schema.get("maximum", schema.get("exclusiveMaximum", 2**53) - 1)
    guess = EPOCH_MS if name.endswith("_ms") else NAMED_INTS.get(name, 1)
    if low is not None and guess < low:
        guess = low
    if high is not None and guess > high:
        guess = high
    return guess


def example(schema: dict[str, Any], defs: dict[str, Any], name: str = "") -> Any:
    """One value satisfying `schema` (`$ref`s resolved in `defs`); `name` is the property it is for."""
    schema = _resolve(schema, defs)
    for key in ("examples",):
        if schema.get(key):
            return schema[key][0]
    if "const" in schema:
        return schema["const"]
    if schema.get("default") not in (None, "", [], {}):
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [b for b in schema[key] if b.get("type") != "null"] or schema[key]
            return example(branches[0], defs, name)
    if "allOf" in schema:
        return example(schema["allOf"][0], defs, name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {key: example(prop, defs, key) for key, prop in props.items()}
    if kind == "array":
        count = max(1, schema.get("minItems", 1))
        items = [example(schema.get("items", {}), defs, name.rstrip("s")) for _ in range(count)]
        if schema.get("uniqueItems") and len(items) > 1:
            raise UnknownPattern(f"no example for {count} unique items ({name})")
        return items
    if kind == "string":
        return _string(schema, name)
    if kind in ("integer", "number"):
        return _number(schema, name)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return {}
