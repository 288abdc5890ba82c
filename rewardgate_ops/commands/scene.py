"""`rewardgate scene ...`: how a scene grants (as PUT /v1/admin/activities/{id}/scenes/{scene})."""

from __future__ import annotations

from typing import Any

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.commands._domain import domain_call, load_json_file
from rewardgate_ops.output import emit, output_option, write_options


@click.group("scene")
def command() -> None:
    """Scenes: award type, per-order cap, stock/budget total and shards, rate limit, reconciliation."""


@command.command("put")
@click.option("--activity-id", required=True)
@click.option("--scene-id", required=True)
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
@write_options
@output_option
@pass_cli
def put(cli: CliContext, activity_id: str, scene_id: str, file_: str | None, yes: bool, dry_run: bool, output: str,
        **options: Any) -> None:
    """Create or replace a scene; its shard caps are re-spread in every child (never above the total)."""
    body = load_json_file(file_) if file_ else {}
    body.update({k: v for k, v in options.items() if v is not None})
    cli.target()
    from chalicelib.rewards import config_store
    from chalicelib.rewards.config import parse_scene

    scene = domain_call(lambda: parse_scene(activity_id, scene_id, body))
    if not cli.confirm(f"put scene {activity_id}/{scene_id} (total {scene.total}, {scene.shard_count} shards)",
                       yes, dry_run):
        emit(output, {"dry_run": True, "scene": scene.to_body()})
        return
    cli.audit("scene.put", {"activity_id": activity_id, "scene_id": scene_id}, scene.to_body())
    saved = domain_call(lambda: config_store.put_scene(scene))
    emit(output, {**saved.to_body(), "version": saved.version}, title=f"scene {activity_id}/{scene_id}")


@command.command("show")
@click.option("--activity-id", required=True)
@click.option("--scene-id", required=True)
@output_option
@pass_cli
def show(cli: CliContext, activity_id: str, scene_id: str, output: str) -> None:
    """A scene's configuration and version."""
    cli.target()
    from chalicelib.rewards import config_store

    scene = domain_call(lambda: config_store.get_scene(activity_id, scene_id))
    emit(output, {**scene.to_body(), "asset": scene.asset, "version": scene.version},
         title=f"scene {activity_id}/{scene_id}")


@command.command("stock")
@click.option("--activity-id", required=True)
@click.option("--scene-id", required=True)
@click.option("--sub-activity-id", help="Child activity (default: the one open now, else the latest started).")
@output_option
@pass_cli
def stock(cli: CliContext, activity_id: str, scene_id: str, sub_activity_id: str | None, output: str) -> None:
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

    emit(output, domain_call(read), title=f"stock of {activity_id}/{scene_id}")
