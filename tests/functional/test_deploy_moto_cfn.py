"""The packaged template's tables and queues, deployed through moto's CloudFormation, then used.

moto cannot run the SAM transform or Lambda, so the stack is the packaged DynamoDB and SQS resources
exactly as they are in `sam.json`. moto's CloudFormation ignores TTL and point-in-time recovery on
tables; those are asserted on the template in tests/unit/test_infra_template.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from chalicelib.queues import CREDITS
from tests.deploy_support import packaged

# `chalice package` runs here unless `make iac-check` left a current build (make test): not in make check.
pytestmark = [pytest.mark.slow, pytest.mark.own_stack]

STACK = "rewardgate-prod"
DATA_TYPES = ("AWS::DynamoDB::Table", "AWS::SQS::Queue")


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The data resources of the packaged template as a CloudFormation stack in moto (in-process)."""
    # The session points boto3 at DynamoDB Local and the moto server; this stack lives in mock_aws.
    for name in [n for n in __import__("os").environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    resources = {lid: r for lid, r in packaged().sam["Resources"].items() if r["Type"] in DATA_TYPES}
    with mock_aws():
        cfn = boto3.client("cloudformation", region_name="us-east-1")
        cfn.create_stack(StackName=STACK, TemplateBody=json.dumps(
            {"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}))
        cfn.get_waiter("stack_create_complete").wait(StackName=STACK, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        created = {r["LogicalResourceId"]: r for r in
                   cfn.describe_stack_resources(StackName=STACK)["StackResources"]}
        yield {"template": resources, "created": created}


def test_moto_stack__every_table_and_queue__created_as_templated(deployed):
    # GIVEN the stack moto created from the packaged data resources
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    template, created = deployed["template"], deployed["created"]
    # THEN each resource exists with the template's keys, indexes and queue attributes
    print(f"tables={sum(r['Type'] == DATA_TYPES[0] for r in template.values())} "
          f"queues={sum(r['Type'] == DATA_TYPES[1] for r in template.values())}")
    assert set(created) == set(template)
    assert {r["ResourceStatus"] for r in created.values()} == {"CREATE_COMPLETE"}
    for lid, resource in template.items():
        props = resource["Properties"]
        if resource["Type"] == "AWS::DynamoDB::Table":
            table = ddb.describe_table(TableName=props["TableName"])["Table"]
            assert table["KeySchema"] == props["KeySchema"], lid
            assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
            assert sorted(g["IndexName"] for g in table.get("GlobalSecondaryIndexes", [])) == sorted(
                g["IndexName"] for g in props.get("GlobalSecondaryIndexes", [])), lid
            assert sorted(i["IndexName"] for i in table.get("LocalSecondaryIndexes", [])) == sorted(
                i["IndexName"] for i in props.get("LocalSecondaryIndexes", [])), lid
        else:
            url = sqs.get_queue_url(QueueName=props["QueueName"])["QueueUrl"]
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            assert int(attributes["MessageRetentionPeriod"]) == props["MessageRetentionPeriod"], lid
            assert attributes["SqsManagedSseEnabled"] == "true"
            if "RedrivePolicy" in props:
                assert int(attributes["VisibilityTimeout"]) == props["VisibilityTimeout"]
                redrive = json.loads(attributes["RedrivePolicy"])
                dlq_id = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
                assert redrive["deadLetterTargetArn"].endswith(":" + template[dlq_id]["Properties"]["QueueName"])
                assert int(redrive["maxReceiveCount"]) == props["RedrivePolicy"]["maxReceiveCount"]


def test_moto_stack__ledger_table__order_put_if_absent_in_its_wallet_and_index_queries(deployed):
    # GIVEN the deployed ledger table and one order as the grant path writes it: its wallet's credit entry
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    table = "rewardgate-prod-ledger"
    key = {"wallet_id": {"S": "a1/formal#u1#CNY"}, "entry_key": {"S": "credit#u1_s1_r1_cash_1"}}
    order = {**key, "hour_bucket": {"S": "2026112210#3"}, "created_at_ms": {"N": "1795315761000"},
             "amount": {"N": "100"}, "status": {"N": "1"}, "kind": {"S": "credit"}}
    # WHEN it is put if absent, twice
    ddb.put_item(TableName=table, Item=order, ConditionExpression="attribute_not_exists(entry_key)")
    with pytest.raises(ClientError) as repeat:
        ddb.put_item(TableName=table, Item=order, ConditionExpression="attribute_not_exists(entry_key)")
    # THEN the repeat is refused, the hour index finds the order, and so does a Query of its wallet's partition
    assert repeat.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    by_hour = ddb.query(TableName=table, IndexName="by_hour", KeyConditionExpression="hour_bucket = :h",
                        ExpressionAttributeValues={":h": {"S": "2026112210#3"}})["Items"]
    pending = ddb.query(TableName=table, ConsistentRead=True,
                        KeyConditionExpression="wallet_id = :w AND begins_with(entry_key, :c)",
                        ExpressionAttributeValues={":w": {"S": "a1/formal#u1#CNY"}, ":c": {"S": "credit#"}})["Items"]
    assert [i["entry_key"]["S"] for i in by_hour] == ["credit#u1_s1_r1_cash_1"]
    assert [i["entry_key"]["S"] for i in pending] == ["credit#u1_s1_r1_cash_1"]
    # AND a pending order is not in the wallet's posted flow (the sparse `by_time`)
    posted = ddb.query(TableName=table, IndexName="by_time", KeyConditionExpression="wallet_id = :w",
                       ExpressionAttributeValues={":w": {"S": "a1/formal#u1#CNY"}})["Items"]
    assert posted == []
    assert ddb.get_item(TableName=table, Key=key)["Item"]["amount"] == {"N": "100"}


def test_moto_stack__credits_queue__failing_message_lands_in_dlq_after_max_receives(deployed):
    # GIVEN the deployed credits queue and its DLQ, and one credit message
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.get_queue_url(QueueName="rewardgate-prod-credits")["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName="rewardgate-prod-credits-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"order_key": "a1/formal#u1_s1_r1_cash_1"}))
    # WHEN a worker receives it and fails it (never deletes) maxReceiveCount times
    receives = 0
    for _ in range(CREDITS.max_receive_count):
        got = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0, MaxNumberOfMessages=1).get("Messages", [])
        receives += len(got)
    after = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0, MaxNumberOfMessages=1).get("Messages", [])
    # THEN the next receive moves it to the DLQ instead of delivering it again
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    print(f"receives={receives} redelivered_after_max={len(after)} in_dlq={len(dead)}")
    assert receives == CREDITS.max_receive_count
    assert after == []
    assert [json.loads(m["Body"]) for m in dead] == [{"order_key": "a1/formal#u1_s1_r1_cash_1"}]
