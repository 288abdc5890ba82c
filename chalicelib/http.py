"""The HTTP edge: the only place that knows status codes.

Views are wrapped with `@api`: a `RewardgateError` becomes its status and JSON body; anything else is
logged with its traceback and answered with a generic 500 that leaks nothing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from chalice import Response

from chalicelib import errors
from chalicelib.observability import logger

JSON_HEADERS = {"Content-Type": "application/json"}

# Most specific class first is not required: `status_for` walks the exception's MRO.
STATUS: dict[type[errors.RewardgateError], int] = {
    errors.InvalidField: 400,
    errors.InvalidJson: 400,
    errors.InvalidToken: 400,
    errors.PayloadTooLarge: 413,
    errors.CallbackRejected: 403,
    errors.NotFound: 404,
    errors.UnknownTpApp: 404,
    errors.OverlappingWindows: 409,
    errors.TotalBelowConsumed: 409,
    errors.ConfigConflict: 409,
    errors.SoldOut: 409,
    errors.OrderConflict: 409,
    errors.InsufficientBalance: 409,
    errors.WithdrawalConflict: 409,
    errors.AmountOverCap: 422,
    errors.AwardTypeMismatch: 422,
    errors.RateLimited: 429,
    errors.PayoutFailed: 502,
    errors.StorageUnavailable: 503,
    errors.SwitchedOff: 503,
    errors.PayoutUnavailable: 503,
    errors.PlayConflict: 409,
}


def status_for(error: errors.RewardgateError) -> int:
    """HTTP status of a domain error (500 for one the edge does not know)."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response with an explicit Content-Type."""
    return Response(body=json.dumps(body, separators=(",", ":")), status_code=status,
                    headers={**JSON_HEADERS, **(headers or {})})


def error_response(error: errors.RewardgateError) -> Response:
    """The response for a domain error: its status and `{"error": code, ...}` body."""
    status = status_for(error)
    headers = {}
    if isinstance(error, errors.RateLimited) and "retry_after_s" in error.details:
        headers["Retry-After"] = str(error.details["retry_after_s"])
    return json_response(error.body(), status, headers)


def api(view: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a Chalice view: translate domain errors to responses; never leak an exception."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except errors.RewardgateError as error:
            level = logger.warning if status_for(error) >= 500 else logger.info
            level("request refused", extra={"error": error.code, "detail": error.message})
            return error_response(error)
        except Exception:
            logger.exception("unhandled error in view", extra={"view": view.__name__})
            return json_response({"error": "internal_error", "message": "internal error"}, 500)

    return wrapper


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


def json_object(raw: bytes | str | None, max_bytes: int = 256 * 1024) -> dict[str, Any]:
    """Parse a request body that must be a JSON object of at most `max_bytes` bytes."""
    if raw is not None and len(raw) > max_bytes:
        raise errors.PayloadTooLarge(f"request body exceeds {max_bytes} bytes", limit_bytes=max_bytes)
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise errors.InvalidJson("request body must be a JSON object")
    return value
