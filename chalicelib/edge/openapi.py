"""The OpenAPI 3.1 document, generated from the operation registry and the typed models.

`document(app)` walks the app's routes; each must have a declared operation (or this raises), so the
document cannot miss a route. Schemas come from the pydantic models (`components.schemas`); errors are
grouped by status, each listing its problem `code`s (`x-problem-codes`). `make openapi` writes it to
`docs/openapi.json`; a test fails when it is stale.

What a client generator needs is stated in JSON Schema and OpenAPI terms: pydantic's bounds as
`minimum`/`maximum`/`minLength`/`minItems`/... (`_json_schema`), the signed open-live routes' JSON bodies
and `x-bili-*` headers as security schemes (`BILI_SCHEMES`), every answer's headers (`X-Request-Id`;
`Retry-After` on 429/503; `Deprecation`/`Sunset`/`Link` on a deprecated route) and an example on every
request and answer (`chalicelib.edge.examples`).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chalicelib import __version__, errors
from chalicelib.edge.examples import example
from chalicelib.edge.models import Problem
from chalicelib.edge.registry import OPERATIONS, Operation, Reply
from chalicelib.http import JSON, PROBLEM_JSON, PROBLEM_TYPE_PREFIX, status_for

OPENAPI_VERSION = "3.1.0"
SIGV4 = "sigv4"
REF = "#/components/schemas/{model}"
HEADER_REF = "#/components/headers/{name}"
# The problems chalicelib.http.error_response answers with a Retry-After header.
RETRY_AFTER_SENT = {"rate_limited", "storage_unavailable"}
CORRELATION_PARAMETER = {
    "name": "X-Correlation-Id", "in": "header", "required": False,
    "description": "the caller's correlation id, echoed in the answer's `X-Correlation-Id` and every log line of the "
                   "request; a value outside the pattern is ignored (the request id is used instead)",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$", "maxLength": 128},
    "example": "checkout-7f3a91",
}
SIGNED_PREFIX = "/v2/app/"  # Bilibili's open-live API: signed with the app's access key, JSON in and out

HOW_TO_SIGN = (
    "Bilibili's open-live signature. Send the six `x-bili-*` headers: `x-bili-accesskeyid` (the app's access key "
    "id), `x-bili-content-md5` (hex MD5 of the exact body bytes), `x-bili-signature-method: HMAC-SHA256`, "
    "`x-bili-signature-nonce` (unique per request; a replay is refused 4004), `x-bili-signature-version: 1.0`, "
    "`x-bili-timestamp` (unix seconds, within 10 minutes). Sort the six by header name, join `name:value` lines "
    "with `\\n` (no trailing newline) and send `Authorization` = hex HMAC-SHA256(access key secret, that "
    "string), with `Content-Type: application/json` and `Accept: application/json`. Refusals are answered in "
    "the envelope at HTTP 200: 4001 unknown key, 4002 signature, 4003 timestamp, 4004 nonce, 4012 MD5.")
BILI_HEADERS = {
    "bili_accesskeyid": ("x-bili-accesskeyid", "the app's access key id"),
    "bili_content_md5": ("x-bili-content-md5", "hex MD5 of the request body bytes"),
    "bili_signature_method": ("x-bili-signature-method", "`HMAC-SHA256`"),
    "bili_signature_nonce": ("x-bili-signature-nonce", "a nonce never sent before with this key"),
    "bili_signature_version": ("x-bili-signature-version", "`1.0`"),
    "bili_timestamp": ("x-bili-timestamp", "unix seconds"),
    "bili_authorization": ("Authorization", "hex HMAC-SHA256 of the sorted `x-bili-*` lines"),
}
BILI_SCHEMES = {name: {"type": "apiKey", "in": "header", "name": header,
                       "description": f"{what}. {HOW_TO_SIGN}" if name == "bili_authorization" else what}
                for name, (header, what) in BILI_HEADERS.items()}
HEADERS = {
    "X-Request-Id": {"description": "this request's id: in every log line and in the problem, quote it to operators",
                     "schema": {"type": "string"}, "example": "8d1f0c3e2b7a4f6e9c5d1a2b3c4d5e6f"},
    "X-Correlation-Id": {"description": "the caller's `X-Correlation-Id` when valid, else the request id",
                         "schema": {"type": "string"}, "example": "8d1f0c3e2b7a4f6e9c5d1a2b3c4d5e6f"},
    "Retry-After": {"description": "seconds to wait before retrying: sent with `rate_limited` (429) and "
                                   "`storage_unavailable` (503), not with API Gateway's `throttled` (back off "
                                   "exponentially there)", "schema": {"type": "integer", "minimum": 0}, "example": 1},
    "Deprecation": {"description": "RFC 9745: when this route was deprecated (`@` unix seconds)",
                    "schema": {"type": "string"}, "example": "@1796688000"},
    "Sunset": {"description": "RFC 8594: after this date the route may stop answering",
               "schema": {"type": "string"}, "example": "Wed, 30 Jun 2027 00:00:00 GMT"},
    "Link": {"description": "the route that replaces this one (`rel=\"successor-version\"`)",
             "schema": {"type": "string"}, "example": '</.well-known/jwks.json>; rel="successor-version"'},
}
# pydantic keeps a bound it cannot apply in its core schema (a `Field(ge=1)` after a `BeforeValidator`) under
# its own name; JSON Schema (OpenAPI 3.1) spells it differently and generators ignore unknown keywords.
_NUMERIC_KEYWORDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum",
                     "multiple_of": "multipleOf"}

# API Gateway's own answers before the function runs (its GatewayResponses are problem+json too).
GATEWAY_RESPONSES = {
    403: ("access_denied", "API Gateway refused the caller: no or invalid SigV4 signature, or the caller's IAM "
                           "policy does not allow this route"),
    429: ("throttled", "API Gateway's stage throttling (or the WAF rate rule on callbacks) refused the request"),
}


def _json_schema(node: Any) -> Any:
    """`node` with pydantic's own constraint names rewritten to their JSON Schema keywords."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    is_array = node.get("type") == "array"
    for key, value in node.items():
        if key in _NUMERIC_KEYWORDS:
            out[_NUMERIC_KEYWORDS[key]] = value
        elif key in ("min_length", "max_length"):
            out[("minItems" if is_array else "minLength") if key == "min_length"
                else ("maxItems" if is_array else "maxLength")] = value
        elif key in ("properties", "$defs", "patternProperties"):
            out[key] = {name: _json_schema(prop) for name, prop in value.items()}
        elif key in ("default", "const", "enum", "examples", "example"):
            out[key] = value
        else:
            out[key] = _json_schema(value)
    return out


def _auto_errors(op: Operation) -> list[type[errors.RewardgateError]]:
    found: list[type[errors.RewardgateError]] = []
    # unknown query parameters are refused on every IAM route (chalicelib.edge.registry.validate_request)
    if op.path_params or op.query is not None or (op.body is not None and op.parse_body) or not op.public:
        found.append(errors.InvalidField)
    if op.body is not None:
        found += [errors.InvalidJson, errors.PayloadTooLarge, errors.UnsupportedMediaType]
    found += [errors.InternalError, errors.StorageUnavailable]
    return found


def error_statuses(op: Operation) -> dict[int, list[str]]:
    """Status -> problem codes an operation may answer (declared, implied by its inputs, the gateway's)."""
    by_status: dict[int, list[str]] = defaultdict(list)
    for cls in (*op.errors, *_auto_errors(op)):
        status = status_for(cls.__new__(cls))
        if cls.code not in by_status[status]:
            by_status[status].append(cls.code)
    if not op.public:
        for status, (code, _) in GATEWAY_RESPONSES.items():
            by_status[status].append(code)
    return dict(sorted(by_status.items()))


def _models(ops: list[Operation]) -> list[tuple[type[BaseModel], str]]:
    seen: dict[tuple[type[BaseModel], str], None] = {(Problem, "serialization"): None}
    for op in ops:
        if op.body is not None:
            seen[(op.body, "validation")] = None
        for reply in op.responses.values():
            if isinstance(reply.schema, type) and issubclass(reply.schema, BaseModel):
                seen[(reply.schema, "serialization")] = None
    return list(seen)


def _schema_of(reply: Reply, refs: dict[tuple[type[BaseModel], str], Any]) -> dict[str, Any] | None:
    if reply.schema is None:
        return None
    if isinstance(reply.schema, dict):
        return reply.schema
    return refs[(reply.schema, "serialization")]


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params = []
    for name, spec in op.path_params.items():
        schema: dict[str, Any] = {"type": "string"}
        if spec.pattern:
            schema["pattern"] = spec.pattern
        params.append({"name": name, "in": "path", "required": True, "schema": schema,
                       "description": spec.problem})
    for name in op.path_params.keys() ^ set(_path_names(op.path)):
        params.append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
    if op.query is not None:
        schema = op.query.model_json_schema()
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            prop = dict(prop)
            description = prop.pop("description", None)
            prop.pop("title", None)
            entry = {"name": name, "in": "query", "required": name in required, "schema": _json_schema(prop)}
            if description:
                entry["description"] = description
            params.append(entry)
    return params


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _problem_example(status: int, codes: list[str]) -> dict[str, Any]:
    code = codes[0]
    cls = next((c for c in _error_classes() if c.code == code), None)
    title = cls.title() if cls is not None else GATEWAY_RESPONSES.get(status, (code, code))[1]
    body: dict[str, Any] = {"type": PROBLEM_TYPE_PREFIX + code, "title": title, "status": status, "code": code,
                            "detail": title[:1].lower() + title[1:]}
    if code == "invalid_field":
        body.update(detail="amount: must be at least 1", field="amount",
                    errors=[{"field": "amount", "problem": "must be at least 1"}])
    return body


@functools.cache
def _error_classes() -> tuple[type[errors.RewardgateError], ...]:
    found: list[type[errors.RewardgateError]] = []
    todo = [errors.RewardgateError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return tuple(found)


def _headers(op: Operation, status: int, codes: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    names = ["X-Request-Id", "X-Correlation-Id"]
    if set(codes) & RETRY_AFTER_SENT:
        names.append("Retry-After")
    if op.deprecated is not None:
        names += ["Deprecation", "Sunset", "Link"]
    return {name: {"$ref": HEADER_REF.format(name=name)} for name in names}


def _request_media(op: Operation) -> tuple[str, ...]:
    # The open-live routes accept any Content-Type at the router so that a wrong one is answered 4011 in
    # Bilibili's envelope rather than a bare 415; a client must send JSON, and that is what is documented.
    return (JSON,) if op.content_types == ("*/*",) else op.content_types


def _security(op: Operation) -> list[dict[str, list[str]]]:
    if op.path.startswith(SIGNED_PREFIX):
        return [{name: [] for name in BILI_SCHEMES}]
    return [] if op.public else [{SIGV4: []}]


def _operation(op: Operation, refs: dict[tuple[type[BaseModel], str], Any], defs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "description": op.description,
                           "tags": list(op.tags), "x-rewardgate-access": op.access}
    if op.deprecated is not None:
        out["deprecated"] = True
        out["description"] += (f"\n\nDeprecated since {op.deprecated.since.isoformat()}; it stops answering after "
                               f"{op.deprecated.sunset.isoformat()}. Use `{op.deprecated.successor}`.")
    # inline, not a $ref: readers of the document (docs/hooks.py, the contract fuzz) take parameters as objects
    out["parameters"] = [*_parameters(op), dict(CORRELATION_PARAMETER)]
    if op.body is not None:
        schema = refs[(op.body, "validation")]
        body_example = op.examples.get("request", None) or example(schema, defs)
        out["requestBody"] = {"required": True, "content": {ct: {"schema": schema, "example": body_example}
                                                            for ct in _request_media(op)}}
    responses: dict[str, Any] = {}
    for status, reply in sorted(op.responses.items()):
        entry: dict[str, Any] = {"description": reply.description, "headers": _headers(op, status)}
        schema = _schema_of(reply, refs)
        if schema is not None:
            answer = op.examples[status] if status in op.examples else example(schema, defs)
            entry["content"] = {reply.media_type: {"schema": schema, "example": answer}}
        responses[str(status)] = entry
    if op.problems:
        for status, codes in error_statuses(op).items():
            if str(status) in responses:
                continue
            responses[str(status)] = {
                "description": ", ".join(f"`{c}`" for c in codes),
                "x-problem-codes": codes,
                "headers": _headers(op, status, codes),
                "content": {PROBLEM_JSON: {"schema": {"$ref": REF.format(model="Problem")},
                                           "example": _problem_example(status, codes)}},
            }
    out["responses"] = responses
    out["security"] = _security(op)
    return out


def operations_of(app: Any) -> list[Operation]:
    """The declared operation of every route of `app`; a route without one is an error."""
    found = []
    for path, methods in sorted(app.routes.items()):
        for method in sorted(methods):
            op = OPERATIONS.get((method, path))
            if op is None:
                raise ValueError(f"{method} {path} has no declared operation (chalicelib.edge.registry.operation)")
            found.append(op)
    return found


def build(app: Any) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `app` (uncached)."""
    ops = operations_of(app)
    refs, found = models_json_schema(_models(ops), ref_template=REF)
    defs = _json_schema(found.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = defaultdict(dict)
    for op in ops:
        paths[op.path][op.method.lower()] = _operation(op, refs, defs)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "rewardgate",
            "version": __version__,
            "description": "Callback gateway, exactly-once reward issuing and crediting, wallets, reconciliation and "
                           "interactive play. Every refusal is an RFC 9457 problem (application/problem+json), except "
                           "the platform callbacks' text and the open-live API (/v2/app/*), which answers in "
                           "Bilibili's envelope {code, message, request_id, data}; money is integer minor units (fen, "
                           "or pieces for coupons). Routes under /v1/ need SigV4 (IAM) in AWS.",
        },
        "servers": [
            {"url": "http://127.0.0.1:8000", "description": "the local stack (make run)"},
            {"url": "https://{api_id}.execute-api.{region}.amazonaws.com/api", "description": "a deployed stage",
             "variables": {"api_id": {"default": "api-id"}, "region": {"default": "us-east-1"}}},
        ],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(defs.items())),
            "headers": HEADERS,
            "securitySchemes": {SIGV4: {"type": "apiKey", "name": "Authorization", "in": "header",
                                        "description": "AWS Signature Version 4 (IAM authorization)",
                                        "x-amazon-apigateway-authtype": "awsSigv4"},
                                **BILI_SCHEMES},
        },
    }


@functools.cache
def _cached(app_id: int, app: Any) -> dict[str, Any]:
    return build(app)


def document(app: Any) -> dict[str, Any]:
    """The document of `app`, built once per process."""
    return _cached(id(app), app)
