"""`rewardgate switch ...`: degradation switches (as PUT /v1/admin/switches/{name})."""

from __future__ import annotations

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.commands._domain import domain_call
from rewardgate_ops.output import emit, output_option, rich_table, write_options


@click.group("switch")
def command() -> None:
    """Degradation switches: grants (global or grants:<activity>:<scene>), token_issuance, withdrawals,
    withdrawal_gray_percent."""


@command.command("set")
@click.option("--name", required=True, help="grants, grants:<activity>:<scene>, token_issuance, withdrawals, "
                                            "withdrawal_gray_percent (the former grants.<activity>.<scene> is "
                                            "refused: it is ambiguous when ids contain '.')")
@click.option("--on/--off", "enabled", default=None, help="For on/off switches.")
@click.option("--percent", type=int, default=None, help="For withdrawal_gray_percent (0-100).")
@write_options
@output_option
@pass_cli
def set_(cli: CliContext, name: str, enabled: bool | None, percent: int | None, yes: bool, dry_run: bool,
         output: str) -> None:
    """Set a switch (takes effect within the configuration cache time, 5 s by default)."""
    if (enabled is None) == (percent is None):
        raise click.UsageError("give exactly one of --on/--off or --percent")
    cli.target()
    from chalicelib.rewards import config_store
    from chalicelib.rewards.config import parse_switch

    body = {"percent": percent} if percent is not None else {"enabled": enabled}
    value = domain_call(lambda: parse_switch(name, body))
    shown = f"{percent}%" if percent is not None else ("on" if enabled else "off")
    if not cli.confirm(f"set switch {name} {shown}", yes, dry_run):
        emit(output, {"dry_run": True, "name": name, **value})
        return
    cli.audit("switch.put", {"name": name}, value)
    emit(output, {"name": name, **domain_call(lambda: config_store.put_switch(name, value))}, title="switch")


@command.command("list")
@output_option
@pass_cli
def list_(cli: CliContext, output: str) -> None:
    """Every switch that has been set (an absent switch is on)."""
    cli.target()
    from chalicelib.rewards import config_store

    values = dict(domain_call(config_store.get_switches).values)
    rows = [(name, "on" if v.get("enabled", True) else "OFF") if "percent" not in v else (name, f"{v['percent']}%")
            for name, v in sorted(values.items())]
    emit(output, values, lambda _d: rich_table(("switch", "value"), rows, "switches (absent = on)"))
