"""`rewardgate reconcile --hour H`: run one reconciliation pass now and print its reports.

Exit status: 0 when every report is clean, 3 when discrepancies were found (so scripts can tell), 1 on
an error.
"""

from __future__ import annotations

import json
from typing import Any

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.commands._domain import domain_call

DISCREPANCIES_FOUND = 3


def render(reports: list[dict[str, Any]]) -> str:
    """Reports as a readable table, then each discrepancy kind with its first ids."""
    children = sorted((r for r in reports if "activity_id" in r),
                      key=lambda r: (r["activity_id"], r["sub_activity_id"]))
    runs = [r for r in reports if "dlq_depths" in r]
    header = ("child activity", "orders", "amount", "credited", "amount", "pending", "redriven", "tallies+",
              "problems", "ok")
    rows = [header] + [(
        f"{r['activity_id']}/{r['sub_activity_id']}", r["orders"], r["orders_amount"], r["credited"],
        r["credited_amount"], r["pending"], r["redriven"], r["tallies_completed"], r["discrepancy_count"],
        "yes" if r["ok"] else "NO",
    ) for r in children]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths,
                                                                                                    strict=True)))
             for row in rows]
    for report in children + runs:
        where = (f"{report['activity_id']}/{report['sub_activity_id']}" if "activity_id" in report else "run")
        for kind, entry in report["discrepancies"].items():
            sample = ", ".join(item["id"] for item in entry["items"][:5])
            more = f" (+{entry['count'] - 5} more)" if entry["count"] > 5 else ""
            lines.append(f"  ! {where}: {kind} x{entry['count']}: {sample}{more}")
        for check in report.get("deferred_checks", []):
            lines.append(f"  ~ {where}: deferred (still moving, re-checked later): {check}")
    for run in runs:
        depths = ", ".join(f"{name}={depth}" for name, depth in sorted(run["dlq_depths"].items()))
        lines.append(f"  queues: DLQ depths {depths}; callback events unapplied past SLA: {run['events_unapplied']}")
    return "\n".join(lines)


@click.command("reconcile")
@click.option("--hour", required=True, help="The UTC hour, like 2026-11-22T10.")
@click.option("--pass", "pass_no", type=click.IntRange(1, 2), default=None,
              help="1 (h+1) or 2 (h+2); default: the pass the hour is due for now.")
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
@pass_cli
def command(cli: CliContext, hour: str, pass_no: int | None, as_json: bool) -> None:
    """Reconcile one hour now: orders, ledger, wallets, counters, queues; re-drive what is stuck."""
    cli.target()
    from tqdm import tqdm

    from chalicelib import clock
    from chalicelib.reconcile import runner

    key = domain_call(lambda: runner.parse_hour(hour))
    pass_no = pass_no or domain_call(lambda: runner.pass_for(key, clock.now_ms()))
    outcome = domain_call(lambda: runner.run(key, pass_no, runner.Budget(0), restart=True))
    with tqdm(total=outcome.steps, initial=outcome.step, unit="step", desc=f"reconcile {runner.display_hour(key)}",
              disable=as_json) as bar:
        while outcome.status != "done":
            outcome = domain_call(lambda: runner.run(key, pass_no, runner.Budget(0)))
            bar.update(outcome.step - bar.n if outcome.status != "done" else outcome.steps - bar.n)
    reports = [r for r in domain_call(lambda: runner.reports(key)) if r["pass"] == pass_no]
    if as_json:
        click.echo(json.dumps(reports, indent=2, sort_keys=True))
    else:
        click.echo(f"hour {runner.display_hour(key)} (UTC), pass {pass_no}")
        click.echo(render(reports))
    if not all(r["ok"] for r in reports):
        raise SystemExit(DISCREPANCIES_FOUND)
