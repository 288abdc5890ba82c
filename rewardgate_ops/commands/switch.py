"""`rewardgate switch ...`: degradation switches (as PUT /v1/admin/switches/{name})."""

from __future__ import annotations

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.commands._domain import domain_call, echo_json


@click.group("switch")
def command() -> None:
    """Degradation switches: grants (global or grants.<activity>.<scene>), token_issuance, withdrawals,
    withdrawal_gray_percent."""


@command.command("set")
@click.argument("name")
@click.option("--on/--off", "enabled", default=None, help="For on/off switches.")
@click.option("--percent", type=int, default=None, help="For withdrawal_gray_percent (0-100).")
@pass_cli
def set_(cli: CliContext, name: str, enabled: bool | None, percent: int | None) -> None:
    """Set a switch (takes effect within the configuration cache time, 5 s by default)."""
    if (enabled is None) == (percent is None):
        raise click.UsageError("give exactly one of --on/--off or --percent")
    cli.target()
    from chalicelib.rewards import config_store
    from chalicelib.rewards.config import parse_switch

    body = {"percent": percent} if percent is not None else {"enabled": enabled}
    echo_json({"name": name, **domain_call(lambda: config_store.put_switch(name, parse_switch(name, body)))})


@command.command("list")
@pass_cli
def list_(cli: CliContext) -> None:
    """Every switch that has been set (an absent switch is on)."""
    cli.target()
    from chalicelib.rewards import config_store

    echo_json(dict(config_store.get_switches().values))
