"""Create a stage's tables and queues on a local endpoint from the CloudFormation in `infra.template`.

This is how the local stack and the test suite get their DynamoDB Local tables and moto queues: by
replaying the same resource definitions the deploy template carries, translated to API calls.
Creation is idempotent, so a restarted stack keeps its persisted data.
"""

from __future__ import annotations

import json
from typing import Any

from infra.template import data_resources

# CloudFormation-only table properties that the CreateTable API does not take (or that DynamoDB
# Local ignores); TTL is applied with its own call below.
_CFN_ONLY_TABLE_KEYS = {"PointInTimeRecoverySpecification", "SSESpecification", "TimeToLiveSpecification"}


def create_table_request(props: dict[str, Any]) -> dict[str, Any]:
    """The CreateTable request for an `AWS::DynamoDB::Table`'s properties."""
    return {k: v for k, v in props.items() if k not in _CFN_ONLY_TABLE_KEYS}


def provision_tables(ddb: Any, stage: str) -> list[str]:
    """Create every missing table of `stage` (and its TTL); return the names created."""
    existing: set[str] = set()
    for page in ddb.get_paginator("list_tables").paginate():
        existing.update(page["TableNames"])
    created = []
    for resource in data_resources(stage).values():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        props = resource["Properties"]
        name = props["TableName"]
        if name in existing:
            continue
        ddb.create_table(**create_table_request(props))
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        created.append(name)
    return created


# Tables an older key layout had and the current one does not: their presence marks a store of that layout.
# (`orders`: an order is now its wallet's credit entry in the ledger table, and the ledger gained the `unsent` index.)
OLD_LAYOUT_TABLES = ("orders",)


def drop_old_layout(ddb: Any, stage: str) -> list[str]:
    """When a stage's store is of an older layout (it has a table in `OLD_LAYOUT_TABLES`), delete every table of
    the stage, so that `provision_tables` creates them afresh; return the names dropped (none for a current store).

    Only for a developer's local data: nothing was ever deployed with an older layout.
    """
    prefix = f"rewardgate-{stage}-"
    existing: list[str] = []
    for page in ddb.get_paginator("list_tables").paginate():
        existing.extend(name for name in page["TableNames"] if name.startswith(prefix))
    if not any(f"{prefix}{old}" in existing for old in OLD_LAYOUT_TABLES):
        return []
    for name in existing:
        ddb.delete_table(TableName=name)
    for name in existing:
        ddb.get_waiter("table_not_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    return sorted(existing)


def old_layout_message(dropped: list[str], data_path: Any) -> str:
    """The one line a developer sees when the local data of an older layout was dropped."""
    return (f"dropped the local data in {data_path} ({len(dropped)} tables): it has an `orders` table, the layout "
            "before orders moved into the ledger table (each order is its wallet's credit entry); the tables are "
            "created afresh, empty. Nothing was deployed with the old layout; configure the activities again.")


def provision_queues(sqs: Any, stage: str) -> dict[str, str]:
    """Create every queue of `stage` (DLQs first, then the queues that redrive into them).

    Returns the URL of each queue by physical name.
    """
    resources = data_resources(stage)
    queues = {lid: r for lid, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    arns: dict[str, str] = {}
    urls: dict[str, str] = {}
    # A queue with a RedrivePolicy needs its DLQ's ARN, so create those without one first.
    for lid, resource in sorted(queues.items(), key=lambda kv: "RedrivePolicy" in kv[1]["Properties"]):
        props = resource["Properties"]
        attributes = {
            "MessageRetentionPeriod": str(props["MessageRetentionPeriod"]),
            "SqsManagedSseEnabled": "true",
        }
        if "VisibilityTimeout" in props:
            attributes["VisibilityTimeout"] = str(props["VisibilityTimeout"])
        redrive = props.get("RedrivePolicy")
        if redrive:
            target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": arns[target], "maxReceiveCount": str(redrive["maxReceiveCount"])}
            )
        url = sqs.create_queue(QueueName=props["QueueName"], Attributes=attributes)["QueueUrl"]
        # create_queue keeps an existing queue's attributes; make them match the definition.
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        arns[lid] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        urls[props["QueueName"]] = url
    return urls
