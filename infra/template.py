"""CloudFormation for rewardgate's data plane, generated from the one definition in `chalicelib`.

Tables come from the PynamoDB models (`chalicelib.dynamo.all_models`), queues from
`chalicelib.queues`. `make package` merges this into Chalice's SAM template; the local stack creates
its tables and queues from the very same resource dicts (`infra.provision`), so the two cannot drift.
"""

from __future__ import annotations

import re
from typing import Any

from pynamodb.models import Model

from chalicelib.dynamo import all_models
from chalicelib.queues import ALL_QUEUES, QueueSpec
from chalicelib.settings import resource_name


def logical_id(name: str, suffix: str) -> str:
    """CloudFormation logical id for a resource: `app-state` + `Table` -> `AppStateTable`."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]", name) if part) + suffix


def _key_schema(entries: list[dict[str, str]]) -> list[dict[str, str]]:
    # HASH must precede RANGE in every KeySchema.
    return sorted(
        ({"AttributeName": e["AttributeName"], "KeyType": e["KeyType"]} for e in entries),
        key=lambda e: e["KeyType"] != "HASH",
    )


def _projection(projection: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ProjectionType": projection["ProjectionType"]}
    if projection.get("NonKeyAttributes"):
        out["NonKeyAttributes"] = list(projection["NonKeyAttributes"])
    return out


def table_properties(model: type[Model], stage: str) -> dict[str, Any]:
    """`AWS::DynamoDB::Table` properties for a model."""
    schema = model._get_schema()
    logical = model.Meta.logical_name  # type: ignore[attr-defined]
    props: dict[str, Any] = {
        "TableName": resource_name(logical, stage),
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": sorted(
            ({"AttributeName": a["AttributeName"], "AttributeType": a["AttributeType"]}
             for a in schema["attribute_definitions"]),
            key=lambda a: a["AttributeName"],
        ),
        "KeySchema": _key_schema(schema["key_schema"]),
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": True},
    }
    gsis = [
        {"IndexName": g["index_name"], "KeySchema": _key_schema(g["key_schema"]),
         "Projection": _projection(g["projection"])}
        for g in schema["global_secondary_indexes"]
    ]
    lsis = [
        {"IndexName": index["index_name"], "KeySchema": _key_schema(index["key_schema"]),
         "Projection": _projection(index["projection"])}
        for index in schema["local_secondary_indexes"]
    ]
    if gsis:
        props["GlobalSecondaryIndexes"] = sorted(gsis, key=lambda g: g["IndexName"])
    if lsis:
        props["LocalSecondaryIndexes"] = sorted(lsis, key=lambda g: g["IndexName"])
    ttl = model.Meta.ttl_attribute  # type: ignore[attr-defined]
    if ttl:
        props["TimeToLiveSpecification"] = {"AttributeName": ttl, "Enabled": True}
    return props


def queue_resources(spec: QueueSpec, stage: str) -> dict[str, Any]:
    """The `AWS::SQS::Queue` pair (work queue + DLQ) for one queue spec."""
    queue_id = logical_id(spec.logical, "Queue")
    dlq_id = logical_id(spec.logical, "DeadLetterQueue")
    return {
        dlq_id: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": resource_name(f"{spec.logical}-dlq", stage),
                "MessageRetentionPeriod": spec.dlq_retention_s,
                "SqsManagedSseEnabled": True,
            },
        },
        queue_id: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": resource_name(spec.logical, stage),
                "VisibilityTimeout": spec.visibility_timeout_s,
                "MessageRetentionPeriod": spec.retention_s,
                "SqsManagedSseEnabled": True,
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
                    "maxReceiveCount": spec.max_receive_count,
                },
            },
        },
    }


def data_resources(stage: str) -> dict[str, Any]:
    """Every table and queue of a stage, as CloudFormation resources keyed by logical id."""
    resources: dict[str, Any] = {}
    for model in all_models():
        resources[logical_id(model.Meta.logical_name, "Table")] = {  # type: ignore[attr-defined]
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": table_properties(model, stage),
        }
    for spec in ALL_QUEUES:
        resources.update(queue_resources(spec, stage))
    return resources
