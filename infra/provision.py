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
