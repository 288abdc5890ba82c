"""`rewardgate scene ...`: how a scene grants (as PUT /v1/admin/activities/{id}/scenes/{scene})."""

from __future__ import annotations

from typing import Any

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.commands._domain import domain_call, echo_json, load_json_file


@click.group("scene")
def command() -> None:
    """Scenes: award type, per-order cap, stock/budget total and shards, rate limit, reconciliation."""


@command.command("put")
@click.argument("activity_id")
@click.argument("scene_id")
@click.option("--file", "file_", help="The scene as JSON (the PUT body); '-' for stdin. Options override it.")
@click.option("--award-type", type=click.Choice(["cash", "coupon"]))
@click.option("--template-id", help="Coupon template (coupon scenes).")
@click.option("--order-cap", type=int, help="Largest amount one order may carry (fen, or pieces).")
@click.option("--total", type=int, help="Budget in fen (cash) or stock in pieces (coupon).")
@click.option("--shard-count", type=int, help="Counter shards (see README 'Capacity').")
@click.option("--rate-limit", "rate_limit_per_s", type=int, help="Grants per second (0 = unlimited).")
@click.option("--stock-control/--no-stock-control", default=None)
@click.option("--reconcile/--no-reconcile", default=None)
@click.option("--bill-text")
@pass_cli
def put(cli: CliContext, activity_id: str, scene_id: str, file_: str | None, **options: Any) -> None:
    """Create or replace a scene; its shard caps are re-spread in every child (never above the total)."""
    body = load_json_file(file_) if file_ else {}
    body.update({k: v for k, v in options.items() if v is not None})
    cli.target()
    from chalicelib.rewards import config_store
    from chalicelib.rewards.config import parse_scene

    saved = domain_call(lambda: config_store.put_scene(parse_scene(activity_id, scene_id, body)))
    echo_json({**saved.to_body(), "version": saved.version})


@command.command("stock")
@click.argument("activity_id")
@click.argument("scene_id")
@click.option("--sub-activity-id", help="Child activity (default: the one open now, else the latest started).")
@pass_cli
def stock(cli: CliContext, activity_id: str, scene_id: str, sub_activity_id: str | None) -> None:
    """Total, consumed and remaining stock/budget of a scene in one child activity."""
    cli.target()
    from chalicelib import clock
    from chalicelib.rewards import config_store, totals

    def read() -> dict[str, Any]:
        activity = config_store.get_activity_uncached(activity_id)
        scene = config_store.get_scene(activity_id, scene_id)
        child = activity.child(sub_activity_id) if sub_activity_id else activity.wallet_child_at(clock.now_ms())
        if child is None:
            raise click.BadParameter(f"activity {activity_id} has no child {sub_activity_id}")
        return totals.stock(scene, activity.ns(child), child)

    echo_json(domain_call(read))
