"""`rewardgate activity ...`: parent activities and their child windows (as PUT /v1/admin/activities)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.commands._domain import domain_call, load_json_file
from rewardgate_ops.output import emit, output_option, rich_table, write_options


def parse_child(text: str) -> dict[str, Any]:
    """`SUB_ID,PURPOSE,START,END` with ISO-8601 times (UTC unless an offset is given) or epoch ms."""
    parts = text.split(",")
    if len(parts) != 4:
        raise click.BadParameter(f"{text!r}: expected SUB_ID,PURPOSE,START,END")
    sub_activity_id, purpose, start, end = (p.strip() for p in parts)
    return {"sub_activity_id": sub_activity_id, "purpose": purpose,
            "starts_at_ms": _instant_ms(start), "ends_at_ms": _instant_ms(end)}


def _instant_ms(text: str) -> int:
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is neither epoch milliseconds nor an ISO-8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


def activity_table(activity: dict[str, Any]) -> Any:
    """An activity's children (and scenes) as a table."""
    rows = [(c["sub_activity_id"], c["purpose"], _iso(c["starts_at_ms"]), _iso(c["ends_at_ms"]))
            for c in activity["children"]]
    title = f"activity {activity['activity_id']} ({activity.get('name') or 'no name'})"
    table = rich_table(("child", "purpose", "starts (UTC)", "ends (UTC)"), rows, title)
    if activity.get("scenes"):
        from rich.console import Group

        scenes = rich_table(("scene", "award", "order cap", "total", "shards", "rate/s", "version"),
                            [(s["scene_id"], s["award_type"], s["order_cap"], s["total"], s["shard_count"],
                              s["rate_limit_per_s"], s["version"]) for s in activity["scenes"]],
                            "scenes")
        return Group(table, scenes)
    return table


@click.group("activity")
def command() -> None:
    """Activities: a parent with child activities by time window (internal_test, gray_rehearsal, formal)."""


@command.command("put")
@click.option("--activity-id", required=True, help="The activity's id.")
@click.option("--file", "file_", help="The activity as JSON (the PUT /v1/admin/activities body); '-' for stdin.")
@click.option("--name", default=None, help="Display name.")
@click.option("--child", "children", multiple=True, metavar="SUB_ID,PURPOSE,START,END",
              help="A child window (repeatable); times ISO-8601 (UTC by default) or epoch ms.")
@write_options
@output_option
@pass_cli
def put(cli: CliContext, activity_id: str, file_: str | None, name: str | None, children: tuple[str, ...],
        yes: bool, dry_run: bool, output: str) -> None:
    """Create or replace an activity (overlapping child windows are refused)."""
    body = load_json_file(file_) if file_ else {}
    if name is not None:
        body["name"] = name
    if children:
        body["children"] = [parse_child(c) for c in children]
    cli.target()
    from chalicelib.rewards import config_store
    from chalicelib.rewards.config import parse_activity

    activity = domain_call(lambda: parse_activity(activity_id, body))
    if not cli.confirm(f"put activity {activity_id} with {len(activity.children)} child windows", yes, dry_run):
        emit(output, {"dry_run": True, "activity": activity.to_body()})
        return
    cli.audit("activity.put", {"activity_id": activity_id}, activity.to_body())
    saved = domain_call(lambda: config_store.put_activity(activity))
    emit(output, saved.to_body(), activity_table)


def _show(activity_id: str) -> dict[str, Any]:
    from chalicelib.rewards import config_store

    activity = config_store.get_activity_uncached(activity_id)
    scenes = [{**s.to_body(), "version": s.version} for s in config_store.list_scenes(activity_id)]
    return {**activity.to_body(), "scenes": scenes}


@command.command("show")
@click.option("--activity-id", required=True)
@output_option
@pass_cli
def show(cli: CliContext, activity_id: str, output: str) -> None:
    """An activity with its child windows and scenes."""
    cli.target()
    emit(output, domain_call(lambda: _show(activity_id)), activity_table)


@command.command("list")
@output_option
@pass_cli
def list_(cli: CliContext, output: str) -> None:
    """Every activity with its child windows (a scan of the small config table)."""
    cli.target()
    from chalicelib.rewards import config_store

    activities = domain_call(config_store.list_activities)
    rows = [(a.activity_id, a.name, len(a.children), ", ".join(c.sub_activity_id for c in a.children))
            for a in activities]
    emit(output, [a.to_body() for a in activities],
         lambda _data: rich_table(("activity", "name", "children", "child ids"), rows, "activities"))


@command.command("totals")
@click.option("--activity-id", required=True)
@output_option
@pass_cli
def totals(cli: CliContext, activity_id: str, output: str) -> None:
    """Total distributed per child activity and asset."""
    cli.target()
    from chalicelib.rewards import totals as figures

    data = domain_call(lambda: figures.activity_totals(activity_id))
    rows = [(c["sub_activity_id"], c["purpose"], asset, d["amount"], d["rewards"])
            for c in data["children"] for asset, d in c["distributed"].items()]
    emit(output, data, lambda _d: rich_table(("child", "purpose", "asset", "amount", "rewards"), rows,
                                             f"distributed in {activity_id}"))
