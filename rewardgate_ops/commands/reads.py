"""Read commands for on-call: `order show`, `wallet show`, `withdrawal show` (straight from the tables)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.commands._domain import domain_call
from rewardgate_ops.output import emit, output_option, rich_table


def _ns(activity_id: str, sub_activity_id: str | None) -> tuple[str, str]:
    from chalicelib import clock
    from chalicelib.rewards import config_store

    activity = config_store.get_activity_uncached(activity_id)
    child = activity.child(sub_activity_id) if sub_activity_id else activity.wallet_child_at(clock.now_ms())
    if child is None:
        raise click.BadParameter(f"activity {activity_id} has no child {sub_activity_id}",
                                 param_hint="'--sub-activity-id'")
    return activity.ns(child), child.sub_activity_id


def _child_options(command: Any) -> Any:
    command = click.option("--sub-activity-id", help="Child activity (default: the open one, else the latest "
                                                     "started).")(command)
    return click.option("--activity-id", required=True)(command)


@click.group("order")
def order() -> None:
    """Reward orders."""


@order.command("show")
@_child_options
@click.option("--order-id", required=True, help="{act_id}_{scene_id}_{rain_id}_{award_type}_{stage}")
@output_option
@pass_cli
def order_show(cli: CliContext, activity_id: str, sub_activity_id: str | None, order_id: str, output: str) -> None:
    """One order: its facts, status (ACCEPTED, CREDITED), shard and times."""
    cli.target()
    from chalicelib.rewards import config_store, ids, orders, wallets

    def read() -> dict[str, Any]:
        ns, _ = _ns(activity_id, sub_activity_id)
        parts = order_id.split("_")
        if len(parts) != 5:
            raise click.ClickException(f"{order_id} is not an order id ({{act_id}}_{{scene_id}}_{{rain_id}}_...)")
        act_id, scene_id, award_type = parts[0], parts[1], parts[3]
        # The order lives in its wallet's ledger partition: the wallet comes from the user and the scene's asset.
        asset = ids.CASH_ASSET if award_type == ids.CASH else config_store.get_scene(activity_id, scene_id).asset
        found = wallets.load_orders([orders.order_ref(ids.wallet_id(ns, act_id, asset), order_id)])
        if not found:
            raise click.ClickException(f"no order {order_id} in {ns}")
        return {"order_key": found[0].order_key, **asdict(found[0]), "status_name": found[0].status_name}

    emit(output, domain_call(read), title=f"order {order_id}")


@click.group("wallet")
def wallet() -> None:
    """User wallets."""


@wallet.command("show")
@_child_options
@click.option("--act-id", required=True, help="The user's id in the activity.")
@click.option("--asset", default="CNY", show_default=True, help="CNY or coupon:<template_id>.")
@click.option("--flow", "flow_limit", type=click.IntRange(0, 100), default=10, show_default=True,
              help="How many of the newest flow items to show (0: none).")
@output_option
@pass_cli
def wallet_show(cli: CliContext, activity_id: str, sub_activity_id: str | None, act_id: str, asset: str,
                flow_limit: int, output: str) -> None:
    """Balance, pending rewards, totals and the newest flow items of a wallet."""
    cli.target()
    from chalicelib.rewards import ids, wallets

    def read() -> dict[str, Any]:
        ns, sub = _ns(activity_id, sub_activity_id)
        wallet_id = ids.wallet_id(ns, act_id, asset)
        view = wallets.view(wallet_id, asset).body()
        flow = wallets.flow(wallet_id, flow_limit, None)["items"] if flow_limit else []
        return {"wallet_id": wallet_id, "sub_activity_id": sub, **view, "flow": flow}

    data = domain_call(read)

    def table(d: dict[str, Any]) -> Any:
        from rich.console import Group

        head = rich_table(("balance", "pending", "income", "withdrawn", "refunded", "currency"),
                          [(d["balance"], d["pending"], d["total_income"], d["total_withdrawn"], d["total_refunded"],
                            d["currency"])], f"wallet {act_id} in {activity_id}/{d['sub_activity_id']}")
        flow = rich_table(("type", "amount", "at_ms", "order / request", "bill"),
                          [(f["type"], f["amount"], f["at_ms"], f.get("order_id") or f.get("request_id"),
                            f["bill_text"]) for f in d["flow"]], "newest flow")
        return Group(head, flow)

    emit(output, data, table)


@click.group("withdrawal")
def withdrawal() -> None:
    """Withdrawals."""


@withdrawal.command("show")
@_child_options
@click.option("--act-id", required=True)
@click.option("--request-id", required=True)
@output_option
@pass_cli
def withdrawal_show(cli: CliContext, activity_id: str, sub_activity_id: str | None, act_id: str, request_id: str,
                    output: str) -> None:
    """A withdrawal's amount, status (PAID, PAYOUT_PENDING, REFUNDED), payout reference and times.

    Request ids are per user and activity: the withdrawal is found in whichever child it was made.
    """
    cli.target()
    from chalicelib.rewards import withdrawal_reads

    def read() -> dict[str, Any]:
        _, sub = _ns(activity_id, sub_activity_id)
        return withdrawal_reads.withdrawal_view(activity_id, act_id, request_id, sub_activity_id, sub)

    emit(output, domain_call(read), title=f"withdrawal {request_id}")


commands = (order, wallet, withdrawal)
