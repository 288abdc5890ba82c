"""The contract from a client generator's side: `docs/openapi.json` as openapi-generator or a typed client
reads it. Every pydantic bound is a JSON Schema keyword, every operation has examples that validate against
its own schemas (and a request example the server's model accepts), the signed /v2 routes declare JSON and
their `x-bili-*` signing headers, every answer declares its headers, the legacy route is deprecated."""

from __future__ import annotations

import typing
from typing import Any

import annotated_types as at
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from pydantic import BaseModel

BILI_HEADERS = {"x-bili-accesskeyid", "x-bili-content-md5", "x-bili-signature-method", "x-bili-signature-nonce",
                "x-bili-signature-version", "x-bili-timestamp", "Authorization"}
RETRY_AFTER_SENT = {"storage_unavailable", "rate_limited"}
PYDANTIC_ONLY = {"ge", "le", "gt", "lt", "min_length", "max_length", "multiple_of"}


@pytest.fixture(scope="module")
def doc(client) -> dict[str, Any]:
    import app
    from chalicelib.edge.openapi import build

    return build(app.app)


@pytest.fixture(scope="module")
def ops(client):
    import app
    from chalicelib.edge.openapi import operations_of

    return operations_of(app.app)


def _operations(doc: dict[str, Any]):
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            yield f"{method.upper()} {path}", op


def _keys(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in ("properties", "$defs", "examples", "example"):
                found.add(key)
            if key == "properties":
                for prop in value.values():
                    found |= _keys(prop)
            elif key != "examples" and key != "example":
                found |= _keys(value)
    elif isinstance(node, list):
        for value in node:
            found |= _keys(value)
    return found


def _flat(schema: dict[str, Any]) -> dict[str, Any]:
    """A property's keywords, through `anyOf` (an optional field) and `allOf`."""
    out = dict(schema)
    for branch in schema.get("anyOf", []) + schema.get("allOf", []):
        if branch.get("type") != "null":
            out.update(_flat(branch))
    return out


def _expected_keywords(annotation_is_str: bool, metadata: list[Any]) -> dict[str, Any]:
    want: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, at.Ge):
            want["minimum"] = item.ge
        elif isinstance(item, at.Le):
            want["maximum"] = item.le
        elif isinstance(item, at.Gt):
            want["exclusiveMinimum"] = item.gt
        elif isinstance(item, at.Lt):
            want["exclusiveMaximum"] = item.lt
        elif isinstance(item, at.MinLen):
            want["minLength" if annotation_is_str else "minItems"] = item.min_length
        elif isinstance(item, at.MaxLen):
            want["maxLength" if annotation_is_str else "maxItems"] = item.max_length
        elif getattr(item, "pattern", None):
            want["pattern"] = item.pattern
    return want


def _models_of(ops) -> set[type[BaseModel]]:
    seen: set[type[BaseModel]] = set()
    todo = [m for op in ops for m in (op.body, op.query, *(r.schema for r in op.responses.values()))
            if isinstance(m, type) and issubclass(m, BaseModel)]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for info in model.model_fields.values():
            for arg in _type_args(info.annotation):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    todo.append(arg)
    return seen


def _type_args(annotation: Any) -> list[Any]:
    out = [annotation]
    for arg in getattr(annotation, "__args__", ()) or ():
        out += _type_args(arg)
    return out


def _is_str(annotation: Any) -> bool:
    """A string field (optional or not), not a list of strings."""
    return str in [a for a in _type_args(annotation) if typing.get_origin(a) is None and a is not list] and \
        not any(typing.get_origin(a) in (list, tuple, set) for a in _type_args(annotation))


# --- JSON Schema keywords ---------------------------------------------------------------------------

def test_openapi__document__has_no_pydantic_only_keywords(doc):
    # GIVEN the document WHEN a generator reads its schemas THEN it finds only JSON Schema keywords
    assert _keys(doc["paths"]) & PYDANTIC_ONLY == set()
    assert _keys(doc["components"]) & PYDANTIC_ONLY == set()


def test_openapi__every_pydantic_bound__is_its_json_schema_keyword(doc, ops):
    # GIVEN every model of every operation and every query parameter
    missing = []
    schemas = doc["components"]["schemas"]
    for model in _models_of(ops):
        props = schemas.get(model.__name__, {}).get("properties")
        query_params = {p["name"]: p["schema"] for _, op in _operations(doc) for p in op.get("parameters", [])
                        if p["in"] == "query"}
        for name, info in model.model_fields.items():
            key = info.alias or name
            want = _expected_keywords(_is_str(info.annotation), list(info.metadata))
            if not want:
                continue
            prop = (props or {}).get(key) if props is not None else query_params.get(key)
            if prop is None:
                missing.append(f"{model.__name__}.{key}: not in the document")
                continue
            got = _flat(prop)
            for keyword, value in want.items():
                if got.get(keyword) != value:
                    missing.append(f"{model.__name__}.{key}: {keyword}={value!r}, document has {got.get(keyword)!r}")
    # THEN the document states every bound the server enforces
    assert missing == []


def test_openapi__page_size__bounded_1_to_100(doc):
    (limit,) = [p for p in doc["paths"]["/v1/wallets/{act_id}/flow"]["get"]["parameters"] if p["name"] == "limit"]
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 100)


def test_openapi__document__valid_openapi_3_1(doc):
    validate_spec(doc)


# --- the signed /v2 routes --------------------------------------------------------------------------

def test_openapi__v2_routes__json_body_bili_signature_and_envelope(doc):
    schemes = doc["components"]["securitySchemes"]
    header_of = {name: s["name"] for name, s in schemes.items() if s["type"] == "apiKey" and s["in"] == "header"}
    v2 = [(name, op) for name, op in _operations(doc) if name.split(" ")[1].startswith("/v2/")]
    assert len(v2) == 5
    for name, op in v2:
        assert list(op["requestBody"]["content"]) == ["application/json"], name
        (requirement,) = op["security"]
        assert {header_of[s] for s in requirement} == BILI_HEADERS, name
        envelope = op["responses"]["200"]["content"]["application/json"]["schema"]
        ref = envelope["$ref"].rsplit("/", 1)[1]
        assert set(doc["components"]["schemas"][ref]["required"]) >= {"code", "message", "request_id", "data"}


def test_openapi__bili_scheme__documents_how_to_sign(doc):
    schemes = doc["components"]["securitySchemes"]
    text = " ".join(s.get("description", "") for s in schemes.values())
    assert "HMAC-SHA256" in text and "sorted" in text and "x-bili-content-md5" in text


# --- headers ----------------------------------------------------------------------------------------

def test_openapi__every_answer__declares_x_request_id_and_throttles_retry_after(doc):
    missing = []
    for name, op in _operations(doc):
        for status, response in op["responses"].items():
            headers = response.get("headers", {})
            if "X-Request-Id" not in headers:
                missing.append(f"{name} {status}: X-Request-Id")
            if status in ("429", "503") and set(response.get("x-problem-codes", [])) & RETRY_AFTER_SENT \
                    and "Retry-After" not in headers:
                missing.append(f"{name} {status}: Retry-After")
    assert missing == []


def test_openapi__retry_after__declared_only_where_the_server_sends_it(doc):
    # chalicelib/http.error_response sends it with these two problems only; API Gateway's throttle, a switched-off
    # operation, a missing payout provider and the open-live envelope do not: a client must not wait for it there
    claimed = [f"{name} {status}" for name, op in _operations(doc) for status, response in op["responses"].items()
               if "Retry-After" in response.get("headers", {})
               and not set(response.get("x-problem-codes", [])) & RETRY_AFTER_SENT]
    assert claimed == []


# --- examples ---------------------------------------------------------------------------------------

def _errors(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> list[str]:
    # the schema's `#/components/...` references resolve inside the document it is part of
    rooted = {**schema, "components": doc["components"]}
    return [e.message for e in Draft202012Validator(rooted).iter_errors(value)]


def test_openapi__every_operation__has_examples_valid_against_its_schemas(doc):
    problems = []
    for name, op in _operations(doc):
        for media, content in op.get("requestBody", {}).get("content", {}).items():
            if "example" not in content:
                problems.append(f"{name} request {media}: no example")
            else:
                problems += [f"{name} request: {m}" for m in _errors(doc, content["schema"], content["example"])]
        for status, response in op["responses"].items():
            for media, content in response.get("content", {}).items():
                if "example" not in content:
                    problems.append(f"{name} {status} {media}: no example")
                else:
                    problems += [f"{name} {status}: {m}" for m in
                                 _errors(doc, content["schema"], content["example"])]
    assert problems == []


def test_openapi__request_examples__accepted_by_the_servers_own_models(doc, ops):
    # a schema-valid example can still break a model rule (a window's end before its start): the model decides
    refused = []
    for op in ops:
        if op.body is None:
            continue
        content = doc["paths"][op.path][op.method.lower()]["requestBody"]["content"]
        example = next(iter(content.values())).get("example")
        try:
            op.body.model_validate(example)
        except ValueError as exc:  # pydantic.ValidationError
            refused.append(f"{op.method} {op.path}: {exc}")
    assert refused == []


# --- the legacy route -------------------------------------------------------------------------------

def test_openapi__legacy_key_route__deprecated_with_successor(doc):
    op = doc["paths"]["/v1/keys/reward-token"]["get"]
    assert op["deprecated"] is True
    assert {"Deprecation", "Sunset", "Link"} <= set(op["responses"]["200"]["headers"])
    deprecated = [name for name, o in _operations(doc) if o.get("deprecated")]
    assert deprecated == ["GET /v1/keys/reward-token"]


def test_legacy_key_route__called__answers_deprecation_and_sunset_headers(client):
    # GIVEN the legacy key route WHEN a client calls it THEN the answer says it is deprecated and when it ends
    answer = client.http.get("/v1/keys/reward-token")
    assert answer.status_code == 200
    assert answer.headers["Deprecation"] == "@1796688000"  # 2026-12-08T00:00:00Z
    assert answer.headers["Sunset"] == "Wed, 30 Jun 2027 00:00:00 GMT"
    assert answer.headers["Link"] == '</.well-known/jwks.json>; rel="successor-version"'


def test_legacy_key_route__refused__still_carries_deprecation(client):
    answer = client.http.get("/v1/keys/reward-token?x=1")
    assert (answer.status_code, answer.json_body["errors"]) == (400, [{"field": "x",
                                                                      "problem": "is not a known parameter"}])
    assert "Deprecation" in answer.headers and "Sunset" in answer.headers


def test_openapi__every_operation__takes_the_optional_correlation_header(doc):
    # a generated client can pass its own correlation id, which the answer's X-Correlation-Id echoes
    found = {name: [p for p in op.get("parameters", []) if p["name"] == "X-Correlation-Id"]
             for name, op in _operations(doc)}
    assert [name for name, params in found.items() if len(params) != 1] == []
    assert {(p["in"], p["required"], p["schema"]["maxLength"]) for (p,) in found.values()} == {("header", False, 128)}
