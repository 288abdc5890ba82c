"""Types every slice's models share: identifiers, amounts, query integers, problems, pages.

Request models are strict (`extra="forbid"`, no type coercion: `"1"` is not an integer, `true` is not
1); query-string models parse ASCII digits only (`²` is not a digit here, whatever `str.isdigit` says).
Response models document what the routes answer; the contract test validates real answers against them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

# The identifier rule of every id rewardgate takes (see chalicelib.validate.IDENT): no `_`, `#` or `|`,
# which rewardgate uses to build keys, so two different tuples never produce the same key.
IDENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$"
IDENT_PROBLEM = "must be 1-64 characters of letters, digits, '.' or '-', starting with a letter or digit"
MAX_SAFE_INT = 2**53 - 1  # JSON numbers beyond this lose precision in many clients
MAX_AMOUNT = 10**12

Ident = Annotated[str, StringConstraints(pattern=IDENT_PATTERN)]
Amount = Annotated[int, Field(ge=1, le=MAX_SAFE_INT, description="integer minor units (fen, or pieces)")]
EpochMs = Annotated[int, Field(ge=0, le=MAX_SAFE_INT, description="milliseconds since the epoch (UTC)")]

_DIGITS = re.compile(r"[0-9]{1,16}")


def _ascii_int(value: Any) -> Any:
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            raise ValueError("must be an integer")
        return int(value)
    return value


QueryInt = Annotated[int, BeforeValidator(_ascii_int)]


class RequestModel(BaseModel):
    """Base of request bodies: strict types, unknown fields refused."""

    model_config = ConfigDict(strict=True, extra="forbid")


class QueryModel(BaseModel):
    """Base of query strings: every value arrives as text; unknown parameters refused."""

    model_config = ConfigDict(extra="forbid")


class ResponseModel(BaseModel):
    """Base of response documents."""

    model_config = ConfigDict(extra="allow")


class FieldError(ResponseModel):
    """One invalid field of a request."""

    field: str = Field(description="the field: `amount`, `children[0].purpose`, or a path or query parameter")
    problem: str


class Problem(ResponseModel):
    """An RFC 9457 problem: every refusal of every route (except the callbacks' `success`/rejection text)."""

    type: str = Field(description="`urn:rewardgate:problem:<code>`")
    title: str
    status: int
    detail: str
    code: str = Field(description="stable machine code, e.g. `sold_out`")
    field: str | None = Field(default=None, description="invalid_field: the first invalid field")
    errors: list[FieldError] | None = Field(default=None, description="invalid_field: every invalid field")


class Cursor(QueryModel):
    """Pagination query parameters shared by every listing."""

    limit: Annotated[QueryInt, Field(ge=1, le=100, description="page size, 1-100 (default 20)")] = 20
    cursor: Annotated[str | None, Field(max_length=2048, description="`next_cursor` of the previous page")] = None
