"""The OpenAPI 3.1 document, generated from the operation registry and the typed models.

`document(app)` walks the app's routes; each must have a declared operation (or this raises), so the
document cannot miss a route. Schemas come from the pydantic models (`components.schemas`); errors are
grouped by status, each listing its problem `code`s (`x-problem-codes`). `make openapi` writes it to
`docs/openapi.json` and regenerates the README's route table; tests fail when either is stale.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chalicelib import __version__, errors
from chalicelib.edge.models import Problem
from chalicelib.edge.registry import OPERATIONS, Operation, Reply
from chalicelib.http import PROBLEM_JSON, status_for

OPENAPI_VERSION = "3.1.0"
SIGV4 = "sigv4"
REF = "#/components/schemas/{model}"

# API Gateway's own answers before the function runs (its GatewayResponses are problem+json too).
GATEWAY_RESPONSES = {
    403: ("access_denied", "API Gateway refused the caller: no or invalid SigV4 signature, or the caller's IAM "
                           "policy does not allow this route"),
    429: ("throttled", "API Gateway's stage throttling (or the WAF rate rule on callbacks) refused the request"),
}


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
            entry = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if description:
                entry["description"] = description
            params.append(entry)
    return params


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _operation(op: Operation, refs: dict[tuple[type[BaseModel], str], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "description": op.description,
                           "tags": list(op.tags), "x-rewardgate-access": op.access}
    params = _parameters(op)
    if params:
        out["parameters"] = params
    if op.body is not None:
        schema = refs[(op.body, "validation")]
        out["requestBody"] = {"required": True, "content": {ct: {"schema": schema} for ct in op.content_types}}
    responses: dict[str, Any] = {}
    for status, reply in sorted(op.responses.items()):
        entry: dict[str, Any] = {"description": reply.description}
        schema = _schema_of(reply, refs)
        if schema is not None:
            entry["content"] = {reply.media_type: {"schema": schema}}
        responses[str(status)] = entry
    if op.problems:
        for status, codes in error_statuses(op).items():
            if str(status) in responses:
                continue
            responses[str(status)] = {
                "description": ", ".join(f"`{c}`" for c in codes),
                "x-problem-codes": codes,
                "content": {PROBLEM_JSON: {"schema": {"$ref": REF.format(model="Problem")}}},
            }
    out["responses"] = responses
    out["security"] = [] if op.public else [{SIGV4: []}]
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
    refs, defs = models_json_schema(_models(ops), ref_template=REF)
    paths: dict[str, dict[str, Any]] = defaultdict(dict)
    for op in ops:
        paths[op.path][op.method.lower()] = _operation(op, refs)
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
            "schemas": dict(sorted(defs.get("$defs", {}).items())),
            "securitySchemes": {SIGV4: {"type": "apiKey", "name": "Authorization", "in": "header",
                                        "description": "AWS Signature Version 4 (IAM authorization)",
                                        "x-amazon-apigateway-authtype": "awsSigv4"}},
        },
    }


@functools.cache
def _cached(app_id: int, app: Any) -> dict[str, Any]:
    return build(app)


def document(app: Any) -> dict[str, Any]:
    """The document of `app`, built once per process."""
    return _cached(id(app), app)
