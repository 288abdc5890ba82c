"""Checks of the money invariants: storage and the provider's ledger against the independent model.

After every step `check_user` runs for the users the step touched; every few steps and at the end `check_all`
runs for everyone; `check_settled` runs once the run is over (provider healthy, queues drained, sweeps done);
`check_reconciliation` compares the final reconciliation reports with the inconsistencies seeded on purpose.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from tests.simulation.model import PAID, PENDING, Model, Reward
from tests.simulation.world import World

# Kinds reconciliation may legitimately report while the run is still moving: delays, not errors (an order not
# credited by h+2 while its message waits; a payout still unsettled while the provider is down or the sweeper
# has not run). After the settling phase neither may remain.
LEGIT_MID_RUN = {"missing_credit", "payout_unresolved"}


def resolve(world: World, model: Model, rewards: list[Reward], every: bool = False) -> None:
    """What storage holds for the order ids of rewards whose attempts died without an answer (`every`: of
    every reward sent, which also finds a second order storage holds for one reward)."""
    for reward in rewards:
        if not (reward.attempts if every else reward.died and not reward.placements):
            continue
        order_id = world.order_id(reward.user, reward.scene_id, reward.rain_id, reward.stage)
        found = world.orders_for(order_id)
        model.found_in_storage(reward, {(child, order_id): amount for child, (amount, _) in found.items()})


def resolve_withdrawals(world: World, model: Model, user: str | None = None) -> None:
    """Users read the withdrawals whose outcome they do not know (GET through the app)."""
    for record in model.open_withdrawals():
        if user is not None and record.user != user:
            continue
        status, body = world.read_withdrawal(record.user, record.request_id, record.child)
        if status == 404:
            model.learned(record.user, record.request_id, None)
        elif status == 200:
            model.learned(record.user, record.request_id, body["status"])
        else:
            model.violate("answer_mismatches", f"withdrawal read {record.user}/{record.request_id}: {status} {body}")


def _conservation(model: Model, user: str, granted_stored: int, source: str) -> None:
    granted = model.granted(user)
    if granted != granted_stored:
        model.violate("conservation_error", f"{user}: granted {granted} != balance + pending + withdrawn - refunded "
                                            f"{granted_stored} ({source})", key=(user, granted, granted_stored))


def _negative(model: Model, user: str, child: str, balance: int) -> None:
    if balance < 0:
        model.violate("negative_balances", f"{user}/{child}: balance {balance}", key=(user, child))


def check_wallets_api(world: World, model: Model, user: str) -> None:
    """granted = balance + pending + withdrawn - refunded, as the wallet API answers the user."""
    granted_stored = 0
    for child in model.plan.children:
        wallet = world.wallet(user, child.sub_activity_id)
        _negative(model, user, child.sub_activity_id, wallet["balance"])
        granted_stored += wallet["balance"] + wallet["pending"] + wallet["total_withdrawn"] - wallet["total_refunded"]
    _conservation(model, user, granted_stored, "wallet API")


def check_user(world: World, model: Model, user: str, final: bool = False, withdrawals: bool = True) -> None:
    """Conservation, balances, debits against the provider's payouts, for one user (storage read directly)."""
    mine = [r for r in model.rewards if r.user == user]
    resolve(world, model, mine)
    placed = [(p, amount) for r in mine if r.scene_id in model.cash for p, amount in r.placements.items()]
    statuses = world.order_statuses([p for p, _ in placed])
    pending = sum(amount for p, amount in placed if statuses.get(p) not in (None, "CREDITED"))
    granted_stored = pending
    for child, (balance, withdrawn, refunded) in world.wallet_items(user).items():
        _negative(model, user, child, balance)
        granted_stored += balance + withdrawn - refunded
    _conservation(model, user, granted_stored, "storage")
    if withdrawals or final:
        check_withdrawals(world, model, user, final)


def check_withdrawals(world: World, model: Model, user: str, final: bool = False) -> None:
    """A user's withdrawals in storage against what the provider actually paid them."""
    stored = world.withdrawals_of(user)
    per_request = Counter(rid for _, rid, _, _ in stored)
    for rid, times in per_request.items():
        if times > 1:
            children = sorted(c for c, r, _, _ in stored if r == rid)
            model.violate("unpaid_debits", f"{user}: withdrawal {rid} debited in {times} wallets {children}",
                          key=(user, rid, "twice"))
    paid = sum(amount for _, _, amount, status in stored if status == PAID)
    debited = sum(amount for _, _, amount, status in stored if status in (PAID, PENDING))
    provider_paid = world.provider.paid_to(user)
    if paid > provider_paid:
        model.violate("unpaid_debits", f"{user}: withdrawals marked PAID {paid} > provider paid {provider_paid}",
                      key=(user, "paid", paid, provider_paid))
    if provider_paid > debited:
        model.violate("double_payouts", f"{user}: provider paid {provider_paid} > debited {debited}",
                      key=(user, "payout", provider_paid, debited))
    if final:
        pending = [(c, r) for c, r, _, status in stored if status == PENDING]
        if pending:
            model.violate("unpaid_debits", f"{user}: withdrawals still PAYOUT_PENDING after the final sweeps: "
                                           f"{pending}", key=(user, "pending"))
        if debited != provider_paid and paid <= provider_paid <= debited:
            model.violate("unpaid_debits", f"{user}: debited {debited} != provider paid {provider_paid}",
                          key=(user, "settled", debited, provider_paid))


def check_lost(world: World, model: Model, rewards: list[Reward]) -> None:
    """Every order the system answered for still exists, for the amount it answered."""
    for reward in rewards:
        if not reward.placements:
            continue
        order_id = world.order_id(reward.user, reward.scene_id, reward.rain_id, reward.stage)
        found = world.orders_for(order_id)
        for (child, oid), amount in reward.placements.items():
            if oid == order_id and found.get(child, (None,))[0] != amount:
                model.violate("lost", f"reward {reward.key}: order {child}/{oid} of {amount} answered, stored "
                                      f"{found.get(child)}", key=(reward.key, child))


def check_stock(world: World, model: Model, final: bool = False) -> None:
    """Stock consumed = the sum of the orders placed, never above the total, in every child. While the run moves,
    units a batch reservation still holds (its writer not knowing whether an order landed) count as consumed
    too: placed <= consumed <= placed + held; at the end no reservation may hold any."""
    for scene in model.plan.scenes:
        if not scene.stock_control:
            continue
        for child in model.plan.children:
            stock = world.stock(scene.scene_id, child.sub_activity_id)
            placed = model.placed_in(child.sub_activity_id, scene.scene_id)
            held = world.leased(scene.scene_id, child.sub_activity_id) if stock["consumed"] > placed else 0
            if stock["consumed"] > scene.total or not placed <= stock["consumed"] <= placed + held or (
                    final and held):
                model.violate("oversold", f"{scene.scene_id}/{child.sub_activity_id}: consumed {stock['consumed']}, "
                                          f"orders {placed}, still reserved {held}, total {scene.total}",
                              key=(scene.scene_id, child.sub_activity_id, stock["consumed"], placed))


def check_all(world: World, model: Model, final: bool = False) -> None:
    """Every invariant, for every user."""
    resolve(world, model, model.rewards, every=final)
    for user in model.plan.users:
        check_user(world, model, user, final=final)
        check_wallets_api(world, model, user)
    check_lost(world, model, model.rewards)
    check_stock(world, model, final=final)


def check_settled(world: World, model: Model) -> None:
    """After the run: every order credited exactly once, in its wallet; the distributed totals add up."""
    credits: Counter = Counter()
    for user in model.plan.users:
        for child in model.plan.children:
            credits.update(world.credit_entries(user, child.sub_activity_id))
    for order_key, times in credits.items():
        if times > 1:
            model.violate("double_credits", f"order {order_key} credited {times} times", key=order_key)
    credited_by_child: Counter = Counter()
    for reward in model.rewards:
        order_id = world.order_id(reward.user, reward.scene_id, reward.rain_id, reward.stage)
        found = world.orders_for(order_id)
        for (child, oid), amount in reward.placements.items():
            status = found.get(child, (None, None))[1]
            if oid != order_id:
                continue
            if status is not None and status != "CREDITED":
                model.violate("stuck_forever", f"reward {reward.key}: order {child}/{oid} is still {status} after "
                                               "the final sweeps, drains and reconciliation", key=(reward.key, child))
            elif status != "CREDITED" or credits[f"{world._ns(child)}#{oid}"] != 1:
                model.violate("lost", f"reward {reward.key}: order {child}/{oid} is {status} with "
                                      f"{credits[f'{world._ns(child)}#{oid}']} ledger credits after the final drain",
                              key=(reward.key, child, "settled"))
            credited_by_child[child] += amount if reward.scene_id in model.cash else 0
    for child in world.totals()["children"]:
        distributed = child["distributed"].get("CNY", {}).get("amount", 0)
        if distributed != credited_by_child[child["sub_activity_id"]]:
            model.violate("conservation_error", f"total distributed in {child['sub_activity_id']} is {distributed}, "
                                                f"credited {credited_by_child[child['sub_activity_id']]}",
                          key=("distributed", child["sub_activity_id"]))


def findings_of(reports: list[dict[str, Any]], namespaces: set[str]) -> list[tuple[str, str, str]]:
    """(kind, id, item JSON) of every finding in the reports of these child namespaces."""
    found = []
    for report in reports:
        run_level = report.get("activity_id") is None  # payouts have no child activity: the run-level report
        if not run_level and f"{report.get('activity_id')}/{report.get('sub_activity_id')}" not in namespaces:
            continue
        for kind, entry in report.get("discrepancies", {}).items():
            if run_level and not kind.startswith("payout_"):
                continue
            for item in entry.get("items", []):
                found.append((kind, str(item.get("id")), json.dumps(item, sort_keys=True)))
    return found


def check_mid_run_reports(model: Model, reports: list[dict[str, Any]], namespaces: set[str]) -> None:
    """While the run moves, reconciliation may report delays, never an inconsistency (none is seeded yet)."""
    for kind, ident, item in findings_of(reports, namespaces):
        if kind not in LEGIT_MID_RUN:
            model.violate("recon_false", f"mid-run reconciliation reported {kind} {ident}: {item}", key=(kind, ident))


def check_reconciliation(model: Model, reports: list[dict[str, Any]], namespaces: set[str],
                         seeded: list[tuple[str, str]], allowed: list[tuple[str, str]] | None = None) -> None:
    """Every seeded inconsistency reported, nothing else but the `allowed` other views of the same faults (exact
    kind and id). A seeded id may be a substring of the item (payouts)."""
    found = findings_of(reports, namespaces)
    for kind, ident in seeded:  # `kind` may name alternatives: "a|b"
        if not any(k in kind.split("|") and (i == ident or ident in item) for k, i, item in found):
            model.violate("recon_missed", f"reconciliation did not report the seeded {kind} {ident}", key=(kind, ident))
    for kind, ident, item in found:
        if (kind, ident) in (allowed or []):
            continue
        if not any(kind in k.split("|") and (ident == s or s in item) for k, s in seeded):
            model.violate("recon_false", f"reconciliation reported {kind} {ident} that was not seeded: {item}",
                          key=(kind, ident))
