"""`rewardgate events ...`: stored platform callbacks (the events table)."""

from __future__ import annotations

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.commands._domain import domain_call
from rewardgate_ops.commands.tp_app import check_tp_app_id
from rewardgate_ops.output import emit, output_option, progress, write_options


def _check_event_type(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from chalicelib.callbacks.events import EVENT_TYPE

    if not EVENT_TYPE.fullmatch(value):
        raise click.BadParameter("must be 1-64 characters of letters, digits, '_', '.' or '-' (e.g. APPLY_CAPACITY)")
    return value


@click.group("events")
def command() -> None:
    """Stored platform callbacks."""


@command.command("replay")
@click.option("--tp-app-id", required=True, callback=lambda _c, _p, v: check_tp_app_id(v),
              help="The tp app whose events to replay.")
@click.option("--type", "event_type", required=True, callback=_check_event_type,
              help="The Event value whose handler was just deployed.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="At most this many events (newest first).")
@write_options
@output_option
@pass_cli
def replay(cli: CliContext, tp_app_id: str, event_type: str, limit: int, yes: bool, dry_run: bool,
           output: str) -> None:
    """Re-apply events of a type that were stored as UNKNOWN (no handler yet) now that one exists.

    Deploy the handler first: a type still unknown to the worker is marked UNKNOWN again.
    """
    cli.target()
    from chalicelib.callbacks import replay as replaying

    if not cli.confirm(f"replay up to {limit} UNKNOWN {event_type} events of tp app {tp_app_id}", yes, dry_run):
        emit(output, {"dry_run": True, "tp_app_id": tp_app_id, "event_type": event_type, "limit": limit})
        return
    cli.audit("events.replay", {"tp_app_id": tp_app_id, "event_type": event_type}, {"limit": limit})
    with progress(output, None, f"replaying {event_type}") as advance:
        done = domain_call(lambda: replaying.replay_unknown(tp_app_id, event_type, limit, on_examined=advance))
    emit(output, {"tp_app_id": tp_app_id, "event_type": event_type, **done.body()}, title="replay")
