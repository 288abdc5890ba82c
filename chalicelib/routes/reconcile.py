"""Reconciliation: the schedule that runs the hourly passes, and the on-demand API."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Rate

from chalicelib import clock, deadline
from chalicelib.edge.registry import ADMIN, READ, PathParam, Reply, operation
from chalicelib.errors import NotFound
from chalicelib.http import json_response
from chalicelib.reconcile import runner
from chalicelib.reconcile.models import HourView, ReconcileBody, RunView

bp = Blueprint(__name__)

# Steps start only in the first half of the request's time left (at most API_BUDGET_S): the other half is for
# the step in progress, which must be stored before the request's deadline (API Gateway cuts it at 29 s).
API_BUDGET_S = 15


def api_budget() -> runner.Budget:
    """How long an API request may keep starting reconciliation steps."""
    return runner.Budget(min(API_BUDGET_S, max(0.0, deadline.remaining_s()) / 2))


@bp.schedule(Rate(5, unit=Rate.MINUTES))
def reconciler(event: Any) -> list[dict]:
    """Run the due passes (h+1 of the last closed hour, h+2 of the one before), resuming where a run stopped."""
    context = getattr(event, "context", None)
    with deadline.bounded(context):
        return [s.body() for s in runner.scheduled(runner.Budget.from_context(context))]


@operation(bp, "POST", "/v1/admin/reconciliations", summary="Run an hour's due reconciliation pass", access=ADMIN,
           body=ReconcileBody, responses={200: RunView, 202: Reply("the pass is unfinished: POST again", RunView)},
           audit="reconciliation.run")
def start_reconciliation(body: ReconcileBody) -> Any:
    """Run (or re-run, or continue) the pass an hour is due for: 200 with its reports, 202 while unfinished."""
    hour = runner.parse_hour(body.hour)
    pass_no = runner.pass_for(hour, clock.now_ms())
    outcome = runner.run(hour, pass_no, api_budget(), restart=True)
    if outcome.status != "done":
        return json_response(outcome.body(), 202)
    reports = [r for r in runner.reports(hour) if r["pass"] == pass_no]
    return json_response({**outcome.body(), "reports": reports})


HOUR = PathParam(pattern=r"^[0-9]{4}-?[0-9]{2}-?[0-9]{2}T?[0-9]{2}$",
                 problem="must be an hour like 2026-11-22T10 (UTC)")


@operation(bp, "GET", "/v1/admin/reconciliations/{hour}", summary="An hour's reconciliation runs and reports",
           access=READ, responses={200: HourView}, path_params={"hour": HOUR}, errors=(NotFound,))
def get_reconciliation(hour: str) -> Any:
    """An hour's runs and reports (both passes)."""
    key = runner.parse_hour(hour)
    runs = {f"pass{p}": runner.status(key, p) for p in (1, 2)}
    found = runner.reports(key)
    if not found and not any(runs.values()):
        raise NotFound(f"hour {runner.display_hour(key)} has not been reconciled", hour=runner.display_hour(key))
    return json_response({"hour": runner.display_hour(key), "runs": runs, "reports": found})
