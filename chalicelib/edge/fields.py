"""How a failed validation is reported: every invalid field as `{field, problem}`, in words a caller reads.

The edge validates requests with it (`chalicelib.edge.registry`); a slice that validates a nested
document itself (a live message's `data`, checked against its `cmd`) uses `validated`, so its errors read
exactly like the edge's: `events[3].data.price: must be at least 0`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from chalicelib import errors
from chalicelib.edge.models import IDENT_PATTERN, IDENT_PROBLEM

M = TypeVar("M", bound=BaseModel)


def _where(loc: tuple[Any, ...], prefix: str) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def _problem(error: Mapping[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "string_pattern_mismatch":
        return IDENT_PROBLEM if ctx.get("pattern") == IDENT_PATTERN else f"must match {ctx.get('pattern')}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer"
    if kind == "bool_type":
        return "must be true or false"
    if kind == "string_type":
        return "must be a string"
    if kind in ("list_type", "tuple_type"):
        return "must be a list"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "must be an object"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} items"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return f"must be at least {ctx.get('min_length')} characters"
    if kind == "value_error":
        return str(ctx.get("error") or error["msg"])
    message = str(error["msg"])
    return message[:1].lower() + message[1:]


def field_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """Every error of a pydantic validation as `{field, problem}`."""
    return [{"field": _where(tuple(e["loc"]), prefix), "problem": _problem(e)} for e in exc.errors()]


def validated(model: type[M], value: Any, prefix: str = "") -> M:
    """`value` validated against `model`; one `InvalidField` naming every invalid field (under `prefix`)."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        found = field_errors(exc, prefix)
        raise errors.InvalidField(found[0]["field"], found[0]["problem"], found) from None
