"""The HTTP edge: the only place that knows status codes, problem bodies and the access log.

Every refusal is an RFC 9457 problem (`application/problem+json`):
`{"type": "urn:rewardgate:problem:<code>", "title", "status", "detail", "code", ...details}`.

Two layers, both registered once for the whole app:
- `edge_middleware` (Chalice `http` middleware, see `app.py`) wraps every request, including the
  405/415 answers Chalice gives before any view runs: it sets the request context (request id,
  correlation id, caller ARN) and the request's deadline (`chalicelib.deadline`: a storage failure
  still retried at the deadline is answered `503` with `Retry-After` before API Gateway's 29 s), turns
  Chalice's own `{"Code", "Message"}` errors into problems, adds `X-Request-Id`/`X-Correlation-Id`,
  emits the request's business metrics as one EMF document and writes ONE structured access line
  (route, status, latency, ids, caller ARN, problem code).
- `api` wraps each view (the operation registry in `chalicelib.edge.registry` applies it): a
  `RewardgateError` becomes its status and problem body; anything else is logged with its traceback
  and answered `500 internal_error`, which leaks nothing.
"""

from __future__ import annotations

import contextvars
import functools
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalice import Response

from chalicelib import deadline, errors
from chalicelib.observability import count, logger, metric_scope, tracer

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
JSON_HEADERS = {"Content-Type": JSON}
PROBLEM_TYPE_PREFIX = "urn:rewardgate:problem:"
REQUEST_ID_HEADER = "X-Request-Id"
CORRELATION_HEADER = "X-Correlation-Id"
_CORRELATION = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# `status_for` walks the exception's MRO, so a subclass inherits its base's status.
STATUS: dict[type[errors.RewardgateError], int] = {
    errors.InvalidField: 400,
    errors.InvalidJson: 400,
    errors.InvalidToken: 400,
    errors.CallbackRejected: 403,
    errors.NotFound: 404,
    errors.UnknownTpApp: 404,
    errors.MethodNotAllowed: 405,
    errors.OverlappingWindows: 409,
    errors.TotalBelowConsumed: 409,
    errors.ConfigConflict: 409,
    errors.AwardTypeImmutable: 409,
    errors.ChildWindowMoved: 409,
    errors.StartedChildRemoved: 409,
    errors.SoldOut: 409,
    errors.OrderConflict: 409,
    errors.InsufficientBalance: 409,
    errors.WithdrawalConflict: 409,
    errors.PlayConflict: 409,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.AmountOverCap: 422,
    errors.AwardTypeMismatch: 422,
    errors.OpenTimeOutOfRange: 422,
    errors.SwitchNameRetired: 422,
    errors.RateLimited: 429,
    errors.InternalError: 500,
    errors.PayoutFailed: 502,
    errors.StorageUnavailable: 503,
    errors.SwitchedOff: 503,
    errors.PayoutUnavailable: 503,
}

# Refusals an operator chose (a switch, no payout provider): answered 503 so callers back off, but
# they are not failures and do not count towards the `ServerErrors` metric the 5xx alarm watches.
DELIBERATE: tuple[type[errors.RewardgateError], ...] = (errors.SwitchedOff, errors.PayoutUnavailable)

# A storage failure (or a request deadline reached while retrying one) is answered 503 with this Retry-After.
STORAGE_RETRY_AFTER_S = 1

# Business metrics counted per refusal code (grants, withdrawals and callbacks count their successes).
REFUSAL_METRICS = {"sold_out": "SoldOut", "order_conflict": "OrderConflicts", "withdrawal_conflict": "Conflicts",
                   "config_conflict": "Conflicts", "rate_limited": "RateLimited"}


def status_for(error: errors.RewardgateError) -> int:
    """HTTP status of a domain error (500 for one the edge does not know)."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def problem_body(error: errors.RewardgateError, status: int | None = None) -> dict[str, Any]:
    """The RFC 9457 problem document for an error (internal details withheld: see `errors`)."""
    body = error.body()
    return {"type": PROBLEM_TYPE_PREFIX + error.code, "title": type(error).title(),
            "status": status or status_for(error), **body}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response with an explicit Content-Type."""
    return Response(body=json.dumps(body, separators=(",", ":")), status_code=status,
                    headers={**JSON_HEADERS, **(headers or {})})


def error_response(error: errors.RewardgateError, headers: dict[str, str] | None = None) -> Response:
    """The problem+json response for a domain error."""
    status = status_for(error)
    extra = dict(headers or {})
    if isinstance(error, errors.RateLimited) and "retry_after_s" in error.details:
        extra["Retry-After"] = str(error.details["retry_after_s"])
    elif isinstance(error, errors.StorageUnavailable):
        extra.setdefault("Retry-After", str(STORAGE_RETRY_AFTER_S))
    context = current()
    if context is not None:
        context.problem = error.code
        context.deliberate = isinstance(error, DELIBERATE)
    if error.code in REFUSAL_METRICS:
        count(REFUSAL_METRICS[error.code])
    return Response(body=json.dumps(problem_body(error, status), separators=(",", ":")), status_code=status,
                    headers={"Content-Type": PROBLEM_JSON, **extra})


# --- the request context -------------------------------------------------------------------------

@dataclass
class RequestContext:
    """Who asks what, for the access line, the audit log and the response headers."""

    request_id: str
    correlation_id: str
    caller_arn: str | None
    method: str
    route: str
    path: str
    started: float = field(default_factory=time.monotonic)
    problem: str | None = None
    deliberate: bool = False
    # Run with the answered status once the response is built (the audit log adds it to its record); each
    # callback is best effort and must not raise.
    after_response: list[Callable[[int], None]] = field(default_factory=list)
    request: Any = None  # the Chalice request (views read it here: it works whichever app serves it)

    @classmethod
    def from_request(cls, request: Any) -> RequestContext:
        """Read the ids and the caller from a Chalice request (API Gateway's requestContext)."""
        context = getattr(request, "context", None) or {}
        identity = context.get("identity") or {}
        request_id = context.get("requestId") or uuid.uuid4().hex
        supplied = (getattr(request, "headers", None) or {}).get(CORRELATION_HEADER.lower())
        correlation = supplied if isinstance(supplied, str) and _CORRELATION.fullmatch(supplied) else request_id
        return cls(request_id=request_id, correlation_id=correlation, caller_arn=identity.get("userArn"),
                   method=getattr(request, "method", "") or "", route=context.get("resourcePath") or "",
                   path=getattr(request, "path", "") or context.get("path") or "", request=request)


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("rg_request", default=None)


def current() -> RequestContext | None:
    """The context of the request being served on this thread (None outside a request)."""
    return _current.get()


def current_request() -> Any:
    """The Chalice request being served (None outside a request)."""
    context = current()
    return context.request if context else None


def caller_arn() -> str | None:
    """The IAM ARN of the caller of the current request (None when unauthenticated, e.g. locally)."""
    context = current()
    return context.caller_arn if context else None


_CHALICE_ERRORS: dict[int, type[errors.RewardgateError]] = {
    400: errors.InvalidJson, 403: errors.RouteNotFound, 404: errors.RouteNotFound, 405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge, 415: errors.UnsupportedMediaType,
}


def _as_problem(response: Response) -> Response:
    """Chalice's own `{"Code", "Message"}` answers (405, 415, its 500) as problem+json."""
    body = response.body
    if not (isinstance(body, dict) and set(body) == {"Code", "Message"}):
        return response
    cls = _CHALICE_ERRORS.get(response.status_code, errors.InternalError)
    error = cls(str(body["Message"])) if cls is not errors.InternalError else errors.InternalError("internal")
    headers = {k: v for k, v in (response.headers or {}).items() if k.lower() != "content-type"}
    return error_response(error, headers)


def edge_middleware(request: Any, get_response: Callable[[Any], Response]) -> Response:
    """Chalice `http` middleware: context, problem+json for Chalice's errors, metrics, one access line."""
    context = RequestContext.from_request(request)
    token = _current.set(context)
    try:
        with metric_scope() as tally:
            try:
                # Every retry inside the view stops at the request's deadline (chalicelib.deadline); what
                # follows the view (audit, access line) runs after it, with its own attempt bound.
                with deadline.request_bounded(request):
                    response = _as_problem(get_response(request))
            except Exception:
                logger.exception("unhandled error outside a view", extra={"path": context.path})
                response = error_response(errors.InternalError("unhandled"))
            status = response.status_code
            tally["Requests"] += 1
            tracer.put_annotation(key="route", value=f"{context.method} {context.route}")
            tracer.put_annotation(key="status", value=status)
            if status >= 500 and not context.deliberate:
                tally["ServerErrors"] += 1
            for callback in context.after_response:
                callback(status)
            response.headers[REQUEST_ID_HEADER] = context.request_id
            response.headers[CORRELATION_HEADER] = context.correlation_id
            logger.info("request", extra={
                "http": {"method": context.method, "route": context.route, "path": context.path, "status": status,
                         "latency_ms": round((time.monotonic() - context.started) * 1000, 2)},
                "request_id": context.request_id, "correlation_id": context.correlation_id,
                "caller_arn": context.caller_arn, "problem": context.problem,
            })
            return response
    finally:
        _current.reset(token)


def api(view: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a Chalice view: translate domain errors to problems; never leak an exception."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # The request's deadline is set by `edge_middleware`, around this wrapper.
        try:
            return view(*args, **kwargs)
        except errors.RewardgateError as error:
            status = status_for(error)
            level = logger.warning if status >= 500 else logger.info
            level("request refused", extra={"problem": error.code, "detail": error.message,
                                            "details": _loggable(error.details),
                                            "reason": getattr(error, "reason", None)})
            return error_response(error)
        except Exception:
            logger.exception("unhandled error in view", extra={"view": view.__name__})
            return error_response(errors.InternalError("unhandled"))

    return wrapper


def _loggable(details: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in details.items() if k != "errors"}


def parse_json(raw: bytes | str | None) -> Any:
    """Parse a request body as JSON; malformed or absurdly nested input is a clean `InvalidJson`."""
    if raw is None or raw in (b"", ""):
        raise errors.InvalidJson("request body is empty; expected a JSON object")
    try:
        return json.loads(raw)
    except RecursionError as exc:
        # CPython's decoder recurses per nesting level; a 10 000-deep array must not kill the function.
        raise errors.InvalidJson("request body is nested too deeply") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise errors.InvalidJson("request body is not valid JSON") from exc
