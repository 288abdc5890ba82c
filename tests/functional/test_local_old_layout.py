"""A developer's local data of the layout before orders moved into the ledger table is dropped at start-up."""

from __future__ import annotations

import boto3

from infra.provision import drop_old_layout, old_layout_message, provision_tables
from infra.template import data_resources


def _tables(ddb, stage: str) -> list[str]:
    return sorted(n for n in ddb.list_tables(Limit=100)["TableNames"] if n.startswith(f"rewardgate-{stage}-"))


def _create(ddb, name: str) -> None:
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}])


def test_drop_old_layout__store_with_an_orders_table__every_table_dropped_then_created_afresh(aws_stack):
    # GIVEN a stage's store of the old layout: an `orders` table beside a ledger without the `unsent` index
    ddb, stage = boto3.client("dynamodb"), "oldlayout"
    _create(ddb, f"rewardgate-{stage}-orders")
    _create(ddb, f"rewardgate-{stage}-ledger")
    # WHEN the local stack starts (drop, then provision)
    dropped = drop_old_layout(ddb, stage)
    provision_tables(ddb, stage)
    # THEN both old tables were dropped and the stage holds exactly the current layout's tables
    assert dropped == [f"rewardgate-{stage}-ledger", f"rewardgate-{stage}-orders"]
    current = sorted(r["Properties"]["TableName"] for r in data_resources(stage).values()
                     if r["Type"] == "AWS::DynamoDB::Table")
    assert _tables(ddb, stage) == current
    ledger = ddb.describe_table(TableName=f"rewardgate-{stage}-ledger")["Table"]
    assert sorted(g["IndexName"] for g in ledger["GlobalSecondaryIndexes"]) == ["by_hour", "unsent"]
    # AND the developer is told once what was dropped and why
    message = old_layout_message(dropped, ".local/data")
    assert message.startswith("dropped the local data in .local/data (2 tables): it has an `orders` table")
    # AND a store of the current layout is kept as it is
    assert drop_old_layout(ddb, stage) == []
    assert _tables(ddb, stage) == current
    for name in current:
        ddb.delete_table(TableName=name)
