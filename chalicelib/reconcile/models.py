"""The reconciliation routes' HTTP contract."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from chalicelib.edge.models import RequestModel, ResponseModel


class ReconcileBody(RequestModel):
    """The hour to reconcile (UTC)."""

    hour: str = Field(description="2026-11-22T10 or 2026112210", max_length=16)


class Progress(ResponseModel):
    """How far a pass has come."""

    step: int
    steps: int


class RunView(ResponseModel):
    """A pass's status; `reports` once it is done."""

    hour: str
    pass_: int = Field(alias="pass")
    status: Literal["running", "done"] | str
    progress: Progress
    reports: list[dict[str, Any]] | None = None


class HourView(ResponseModel):
    """An hour's runs (both passes) and every report."""

    hour: str
    runs: dict[str, dict[str, Any] | None]
    reports: list[dict[str, Any]]
