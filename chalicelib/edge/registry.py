"""The operation registry: each route declared once, with its models, errors and callers.

```python
@operation(bp, "POST", "/v1/grants", summary="Grant one reward", body=GrantBody,
           responses={202: GrantView, 200: GrantView}, errors=(SoldOut, OrderConflict), access=GRANT)
def create_grant(body: GrantBody) -> Response: ...
```

`operation` registers the Chalice route (wrapped with `chalicelib.http.api`), and before the view runs
validates the path parameters, the query string (`query=`) and the JSON body (`body=`) against their
models, reporting **every** invalid field at once (`400 invalid_field` with `errors`). The view gets
the path parameters, and `body` / `query` when declared, as keyword arguments.

Every operation is recorded in `OPERATIONS`, from which `chalicelib.edge.openapi` builds the OpenAPI
document and `infra` the IAM policies (`access`: who may call it). Routes that do not speak
problem+json or JSON (the platform callbacks, Bilibili's `/v2/app/*` envelope) declare their own
media types and bodies with `Reply` and `problems=False` / `parse_body=False`.
"""

from __future__ import annotations

import datetime
import email.utils
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic_core
from pydantic import BaseModel, ValidationError

from chalicelib import errors
from chalicelib.edge.fields import field_errors
from chalicelib.edge.models import IDENT_PATTERN, IDENT_PROBLEM
from chalicelib.errors import RewardgateError
from chalicelib.http import JSON, api, current, current_request

# Who may call an operation; infra/iam.py makes one managed policy per kind (and read-only: every GET).
PUBLIC = "public"  # no IAM: platform callbacks (signed), the JWKS, the OpenAPI document
ADMIN = "admin"  # operators: activities, scenes, switches, reconciliations
GRANT = "grant"  # upstream services granting rewards
WALLET = "wallet"  # the wallet service: balances, flow, withdrawals
READ = "read"  # read-only callers (on-call, dashboards)
PLATFORM = "platform"  # the live platform's own services: streamers' identity codes, rooms' live events
CREDENTIALS = "credentials"  # the audited read of callback credentials (redacted for READ)
ACCESS_KINDS = (PUBLIC, ADMIN, GRANT, WALLET, READ, PLATFORM, CREDENTIALS)

DEFAULT_MAX_BODY = 256 * 1024


@dataclass(frozen=True)
class Reply:
    """A documented answer: its media type and schema (a model, a JSON schema dict, or None for none)."""

    description: str
    schema: type[BaseModel] | dict[str, Any] | None = None
    media_type: str = JSON


@dataclass(frozen=True)
class PathParam:
    """How a path parameter is checked (a regex) and documented."""

    pattern: str | None = IDENT_PATTERN
    problem: str = IDENT_PROBLEM
    description: str = ""


IDENT_PARAM = PathParam()


@dataclass(frozen=True)
class Deprecated:
    """A route kept for old clients: documented `deprecated: true`, answered with `Deprecation` (RFC 9745),
    `Sunset` (RFC 8594) and a `Link` to its successor on every answer."""

    since: datetime.date
    sunset: datetime.date
    successor: str

    def headers(self) -> dict[str, str]:
        """The headers every answer of the route carries."""
        since = datetime.datetime.combine(self.since, datetime.time(), datetime.UTC)
        sunset = datetime.datetime.combine(self.sunset, datetime.time(), datetime.UTC)
        return {"Deprecation": f"@{int(since.timestamp())}",
                "Sunset": email.utils.format_datetime(sunset, usegmt=True),
                "Link": f'<{self.successor}>; rel="successor-version"'}


@dataclass(frozen=True)
class Operation:
    """One route and method with everything the contract says about it."""

    method: str
    path: str
    operation_id: str
    summary: str
    description: str
    access: str
    tags: tuple[str, ...]
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    responses: Mapping[int, Reply]
    errors: tuple[type[errors.RewardgateError], ...]
    path_params: Mapping[str, PathParam]
    content_types: tuple[str, ...]
    max_body_bytes: int
    parse_body: bool
    problems: bool
    audit: str | None
    deprecated: Deprecated | None = None
    examples: Mapping[str | int, Any] = field(default_factory=dict)

    @property
    def public(self) -> bool:
        """Callable without IAM authorization."""
        return self.access == PUBLIC


OPERATIONS: dict[tuple[str, str], Operation] = {}


def _reply(value: Reply | type[BaseModel] | None, status: int) -> Reply:
    if isinstance(value, Reply):
        return value
    return Reply(description={200: "OK", 201: "Created", 202: "Accepted"}.get(status, "answer"), schema=value)


def operation(bp: Any, method: str, path: str, *, summary: str, access: str,
              responses: Mapping[int, Reply | type[BaseModel] | None],
              body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
              errors: tuple[type[errors.RewardgateError], ...] = (), tags: tuple[str, ...] = (),
              path_params: Mapping[str, PathParam | None] | None = None,
              content_types: tuple[str, ...] = (JSON,), max_body_bytes: int = DEFAULT_MAX_BODY,
              parse_body: bool = True, problems: bool = True, audit: str | None = None,
              operation_id: str | None = None, deprecated: Deprecated | None = None,
              examples: Mapping[str | int, Any] | None = None,
              on_error: Callable[[errors.RewardgateError], Any] | None = None,
              ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare and register a route (see the module docstring).

    `path_params` overrides the check of a path parameter (default: an identifier); `None` leaves it to
    the view (the callback gateway answers an unknown tp app id exactly like a forged callback).
    `parse_body=False` hands the raw body to the view (`body` is then documentation only); `audit`
    names the action recorded in the audit log, with the caller's ARN, before the view runs.
    `on_error` renders every domain error of this operation (validation included) instead of a problem:
    a protocol with its own envelope (Bilibili's `{code, message, request_id, data}` at HTTP 200) passes
    its renderer and `problems=False` (its answers are then documented by `responses` alone).
    `deprecated` marks a legacy route (documented, and its answers carry `Deprecation`/`Sunset`);
    `examples` gives the documented examples: `"request"` for the body, a status for its answer (the
    others are derived from the schemas by `chalicelib.edge.examples`).
    """
    if access not in ACCESS_KINDS:
        raise ValueError(f"access must be one of {ACCESS_KINDS}")
    method = method.upper()
    names = re.findall(r"\{([^}]+)\}", path)
    overrides = dict(path_params or {})
    params = {name: overrides[name] if name in overrides else IDENT_PARAM for name in names}

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        op = Operation(
            method=method, path=path, operation_id=operation_id or view.__name__, summary=summary,
            description=(view.__doc__ or summary).strip(), access=access,
            tags=tags or (bp._import_name.split(".")[-1],),
            body=body, query=query, responses={s: _reply(r, s) for s, r in responses.items()}, errors=errors,
            path_params={n: p for n, p in params.items() if p is not None}, content_types=content_types,
            max_body_bytes=max_body_bytes, parse_body=parse_body, problems=problems, audit=audit,
            deprecated=deprecated, examples=dict(examples or {}),
        )
        if (method, path) in OPERATIONS:
            raise ValueError(f"{method} {path} is declared twice")
        OPERATIONS[(method, path)] = op

        def run(path_values: dict[str, str]) -> Any:
            request = current_request() or bp.current_request
            kwargs = validate_request(op, path_values, request.query_params, request.raw_body)
            if op.audit is not None:
                _record_audit(op.audit, path_values, kwargs.get("body"))
            return view(**kwargs)

        @functools.wraps(view)
        def handler(**path_values: str) -> Any:
            if on_error is None:
                return run(path_values)
            try:
                return run(path_values)
            except RewardgateError as error:  # (`errors` is this function's parameter here)
                return on_error(error)

        chalice_kwargs: dict[str, Any] = {"methods": [method]}
        if method not in ("GET", "HEAD", "DELETE"):
            chalice_kwargs["content_types"] = list(content_types)
        wrapped = api(handler) if deprecated is None else _with_headers(api(handler), deprecated.headers())
        # Not `bp.route`: Chalice's deferred route registration pops `methods` from a dict it shares
        # between registrations, so a blueprint registered in two apps (the API and the callback
        # function) gets GET in the second. A fresh copy of the arguments for every app avoids it.
        bp._deferred_registrations.append(
            lambda app, _options: app.route(path, **{**chalice_kwargs, "name": view.__name__})(wrapped))
        return view

    return decorate


def _with_headers(view: Callable[..., Any], headers: Mapping[str, str]) -> Callable[..., Any]:
    """`view` whose every answer (refusals included) carries `headers`."""

    @functools.wraps(view)
    def wrapper(**path_values: str) -> Any:
        response = view(**path_values)
        response.headers.update(headers)
        return response

    return wrapper


# --- validation -------------------------------------------------------------------------------------

def _body_json_error(exc: ValidationError) -> errors.InvalidJson | None:
    for error in exc.errors():
        if error["type"] == "json_invalid":
            nested = "recursion limit" in str(error.get("ctx", {}).get("error", error["msg"]))
            problem = "request body is nested too deeply" if nested else "request body is not valid JSON"
            return errors.InvalidJson(problem)
        if error["type"] == "model_type" and not error["loc"]:
            return errors.InvalidJson("request body must be a JSON object")
    return None


def _check_size(raw: bytes | str | None, max_bytes: int) -> None:
    if raw is not None and len(raw) > max_bytes:
        raise errors.PayloadTooLarge(f"request body exceeds {max_bytes} bytes", limit_bytes=max_bytes)
    if raw is None or raw in (b"", ""):
        raise errors.InvalidJson("request body is empty; expected a JSON object")


def validate_body(model: type[BaseModel], raw: bytes | str | None, max_bytes: int = DEFAULT_MAX_BODY) -> BaseModel:
    """A JSON body validated against `model`; `InvalidJson`, `PayloadTooLarge` or `InvalidField` otherwise."""
    _check_size(raw, max_bytes)
    try:
        return model.model_validate_json(raw)  # type: ignore[arg-type]
    except ValidationError as exc:
        bad_json = _body_json_error(exc)
        if bad_json is not None:
            raise bad_json from None
        found = field_errors(exc)
        raise errors.InvalidField(found[0]["field"], found[0]["problem"], found) from None


def read_object(raw: bytes | str | None, max_bytes: int = DEFAULT_MAX_BODY) -> dict[str, Any]:
    """A JSON object body, parsed once, for a view whose model depends on the body's shape (`parse_body=False`):
    it validates it with `chalicelib.edge.fields.validated`. NaN and Infinity are not JSON and are refused."""
    _check_size(raw, max_bytes)
    try:
        value = pydantic_core.from_json(raw, allow_inf_nan=False)  # type: ignore[arg-type]
    except ValueError as exc:
        nested = "recursion limit" in str(exc)
        raise errors.InvalidJson("request body is nested too deeply" if nested
                                 else "request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise errors.InvalidJson("request body must be a JSON object")
    return value


def validate_request(op: Operation, path_values: Mapping[str, str], query: Mapping[str, str] | None,
                     raw_body: bytes | str | None) -> dict[str, Any]:
    """The view's keyword arguments, or one `InvalidField` naming every invalid part of the request."""
    found: list[dict[str, str]] = []
    for name, spec in op.path_params.items():
        value = path_values.get(name) or ""
        if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
            found.append({"field": name, "problem": spec.problem})
    kwargs: dict[str, Any] = dict(path_values)
    if op.query is not None:
        try:
            kwargs["query"] = op.query.model_validate(dict(query or {}))
        except ValidationError as exc:
            found += field_errors(exc)
    elif query and op.problems and op.access != PUBLIC:
        found += [{"field": name, "problem": "is not a known parameter"} for name in sorted(query)]
    if op.body is not None and op.parse_body:
        try:
            kwargs["body"] = validate_body(op.body, raw_body, op.max_body_bytes)
        except errors.InvalidField as exc:
            found += exc.details["errors"]
        except (errors.InvalidJson, errors.PayloadTooLarge):
            if not found:
                raise
            # a malformed body and a malformed path: report the fields we could check
    if found:
        raise errors.InvalidField(found[0]["field"], found[0]["problem"], found)
    return kwargs


def _record_audit(action: str, target: Mapping[str, Any], body: Any) -> None:
    """Record the current request in the audit log (caller and ids from its context); the status follows once
    the response is built."""
    from chalicelib.audit import log as audit_log

    context = current()
    key = audit_log.record(action, context.caller_arn if context else None, target, body,
                           request_id=context.request_id if context else None,
                           correlation_id=context.correlation_id if context else None)
    if context is not None:
        context.after_response.append(lambda status: audit_log.finish(key, status))
