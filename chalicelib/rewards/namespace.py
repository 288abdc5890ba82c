"""The public side of the internal namespace: request validation refuses any activity reserved for internal
credits (`chalicelib.rewards.internal.is_internal`) with 400 `invalid_field` naming the field, before anything
is read or written.

`PublicActivityId` is the grant body's `activity_id` type (so the single and the batch grant route refuse it in
their request validation); `refuse_internal` is the same rule for a path parameter (the admin routes).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from chalicelib.edge.models import Ident
from chalicelib.errors import InvalidField
from chalicelib.rewards.internal import is_internal

PROBLEM = "names an internal activity: internal money movements never go through the public grant and admin routes"


def _public(activity_id: str) -> str:
    if is_internal(activity_id):
        raise ValueError(PROBLEM)
    return activity_id


PublicActivityId = Annotated[Ident, AfterValidator(_public)]


def refuse_internal(activity_id: str, field: str = "activity_id") -> None:
    """`InvalidField` naming `field` when `activity_id` is in the internal namespace."""
    if is_internal(activity_id):
        raise InvalidField(field, PROBLEM)
