"""`rewardgate activity ...`: parent activities and their child windows (as PUT /v1/admin/activities)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.commands._domain import domain_call, echo_json, load_json_file


def parse_child(text: str) -> dict[str, Any]:
    """`SUB_ID,PURPOSE,START,END` with ISO-8601 times (UTC unless an offset is given) or epoch ms."""
    parts = text.split(",")
    if len(parts) != 4:
        raise click.BadParameter(f"{text!r}: expected SUB_ID,PURPOSE,START,END")
    sub_activity_id, purpose, start, end = (p.strip() for p in parts)
    return {"sub_activity_id": sub_activity_id, "purpose": purpose,
            "starts_at_ms": _instant_ms(start), "ends_at_ms": _instant_ms(end)}


def _instant_ms(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is neither epoch milliseconds nor an ISO-8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@click.group("activity")
def command() -> None:
    """Activities: a parent with child activities by time window (internal_test, gray_rehearsal, formal)."""


@command.command("put")
@click.argument("activity_id")
@click.option("--file", "file_", help="The activity as JSON (the PUT /v1/admin/activities body); '-' for stdin.")
@click.option("--name", default=None, help="Display name.")
@click.option("--child", "children", multiple=True, metavar="SUB_ID,PURPOSE,START,END",
              help="A child window (repeatable); times ISO-8601 (UTC by default) or epoch ms.")
@pass_cli
def put(cli: CliContext, activity_id: str, file_: str | None, name: str | None, children: tuple[str, ...]) -> None:
    """Create or replace an activity (overlapping child windows are refused)."""
    body = load_json_file(file_) if file_ else {}
    if name is not None:
        body["name"] = name
    if children:
        body["children"] = [parse_child(c) for c in children]
    cli.target()
    from chalicelib.rewards import config_store
    from chalicelib.rewards.config import parse_activity

    saved = domain_call(lambda: config_store.put_activity(parse_activity(activity_id, body)))
    echo_json(saved.to_body())


@command.command("show")
@click.argument("activity_id")
@pass_cli
def show(cli: CliContext, activity_id: str) -> None:
    """An activity with its scenes."""
    cli.target()
    from chalicelib.rewards import config_store

    activity = domain_call(lambda: config_store.get_activity_uncached(activity_id))
    scenes = [{**s.to_body(), "version": s.version} for s in config_store.list_scenes(activity_id)]
    echo_json({**activity.to_body(), "scenes": scenes})


@command.command("totals")
@click.argument("activity_id")
@pass_cli
def totals(cli: CliContext, activity_id: str) -> None:
    """Total distributed per child activity and asset."""
    cli.target()
    from chalicelib.rewards import totals as figures

    echo_json(domain_call(lambda: figures.activity_totals(activity_id)))
