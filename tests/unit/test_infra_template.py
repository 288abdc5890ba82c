"""The merge template: data resources from the models, event sources, authorization, alarms, config."""

from __future__ import annotations

import functools
import json

import pytest

from chalicelib.queues import ALL_QUEUES
from chalicelib.rewards.tables import LedgerEntry
from infra import alarms, lambdas
from infra.template import data_resources, merge_template


@pytest.fixture(autouse=True)
def _settings_follow_the_environment():
    # Tests here set the deployed environment (RG_STAGE=prod, RG_PAYOUT_PROVIDER=none) with monkeypatch;
    # settings() caches what it read, so drop the cache after each test or later tests in the same process
    # run with prod's settings (a withdrawal answered 503 payout_unavailable in a functional test after these).
    from chalicelib.settings import reset_settings

    yield
    reset_settings()

STAGE = "prod"


@functools.cache
def merged() -> dict:
    return merge_template(STAGE)


def test_tables__ledger_holds_the_orders__keys_indexes_and_protection_from_the_models():
    # GIVEN the ledger table of the merge template (an order is its wallet's credit entry: no orders table)
    resources = merged()["Resources"]
    ledger = resources["LedgerTable"]
    # THEN keys and indexes are the models', and data survives stack deletion and mistakes
    assert "OrdersTable" not in resources
    assert ledger["Properties"]["KeySchema"] == [{"AttributeName": "wallet_id", "KeyType": "HASH"},
                                                 {"AttributeName": "entry_key", "KeyType": "RANGE"}]
    assert sorted(g["IndexName"] for g in ledger["Properties"]["GlobalSecondaryIndexes"]) == ["by_hour", "unsent"]
    assert sorted(g["IndexName"] for g in ledger["Properties"]["GlobalSecondaryIndexes"]) == sorted(
        i.Meta.index_name for i in LedgerEntry._indexes.values() if i.Meta.index_name != "by_time")
    assert [i["IndexName"] for i in ledger["Properties"]["LocalSecondaryIndexes"]] == ["by_time"]
    assert ledger["Properties"]["TableName"] == f"rewardgate-prod-{LedgerEntry.Meta.logical_name}"
    assert ledger["DeletionPolicy"] == "Retain"
    assert ledger["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
    assert ledger["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert ledger["Properties"]["SSESpecification"] == {"SSEEnabled": True}
    assert resources["EventsTable"]["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expires_at",
                                                                               "Enabled": True}


def test_merge_template__data_resources__identical_to_what_the_local_stack_provisions():
    # GIVEN the resources the local stack creates for a stage
    local = data_resources(STAGE)
    # THEN the merge template carries the same properties (plus only scanner justifications)
    for lid, resource in local.items():
        assert merged()["Resources"][lid]["Properties"] == resource["Properties"], lid
        assert set(merged()["Resources"][lid]) - set(resource) == {"Metadata"}


def test_queues__every_dlq__retained_longer_than_its_queue():
    # GIVEN the queue pairs
    resources = merged()["Resources"]
    for spec in ALL_QUEUES:
        queue = resources[f"{spec.logical.capitalize()}Queue"]["Properties"]
        dlq = resources[f"{spec.logical.capitalize()}DeadLetterQueue"]["Properties"]
        # THEN failed messages outlive the queue's own retention and land after maxReceiveCount
        assert dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
        assert queue["RedrivePolicy"]["maxReceiveCount"] == spec.max_receive_count >= 3


def test_sqs_functions__event_source__reports_batch_item_failures_and_caps_concurrency():
    # GIVEN the SQS-triggered functions
    for fn in [f for f in lambdas.functions(STAGE) if f.kind == "sqs"]:
        event = merged()["Resources"][fn.logical_id]["Properties"]["Events"][fn.sqs_event_id]["Properties"]
        # THEN a failed record is redelivered alone, and a reserved function's poller stops at the reservation
        assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        if fn.reserved_concurrency:
            assert event["ScalingConfig"] == {"MaximumConcurrency": fn.reserved_concurrency}


def test_credit_worker__settings__reserved_arm64_retained_logs():
    # GIVEN the credit worker as Chalice will build it
    (fn,) = [f for f in lambdas.functions(STAGE) if f.name == "credit_worker"]
    # THEN it has a reservation (the credit rate), runs on arm64 and keeps logs 30 days
    assert fn.reserved_concurrency and fn.reserved_concurrency >= 2
    assert (fn.architecture, fn.log_retention_days) == ("arm64", 30)
    assert merged()["Resources"]["CreditWorker"]["Properties"]["FunctionName"] == "rewardgate-prod-credit_worker"
    assert merged()["Resources"]["CreditWorkerLogGroup"]["Properties"]["LogGroupName"] == (
        "/aws/lambda/rewardgate-prod-credit_worker")


def test_api__v1_routes_need_iam__callbacks_and_open_live_stay_public():
    # GIVEN the API overrides
    body = merged()["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    routes = lambdas.routes()
    # THEN every /v1 method carries the sigv4 scheme and no callback or open-live method does
    assert body["securityDefinitions"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    secured = {(path, method) for path, methods in body["paths"].items() for method, spec in methods.items()
               if "security" in spec}
    assert secured == {(r.path, r.method) for r in routes if r.path.startswith("/v1/")}
    assert {r.path for r in routes if r.public} == {"/callbacks/{tp_app_id}/auth", "/callbacks/{tp_app_id}/events",
                                                    "/.well-known/jwks.json", "/openapi.json", "/docs",
                                                    "/docs/redoc.standalone.js",
                                                    *(f"/v2/app/{api}" for api in ("start", "heartbeat",
                                                                                   "batchHeartbeat", "end",
                                                                                   "events"))}


def test_alarms__every_dlq_every_function_reconciliation_and_api__notify_the_topic():
    # GIVEN the alarms of the stage
    found = {lid: r["Properties"] for lid, r in merged()["Resources"].items()
             if r.get("Type") == "AWS::CloudWatch::Alarm"}
    functions = lambdas.functions(STAGE)
    # THEN each DLQ, each function, the reconciliation metric and the API have one, all to the topic
    expected = ({"CreditsDeadLetterAlarm", "EventsDeadLetterAlarm", "LiveDeadLetterAlarm",
                 "ReconciliationDiscrepancyAlarm", "ReconciliationBehindAlarm", "CreditsQueueAgeAlarm",
                 "LiveQueueAgeAlarm", "Api5xxAlarm", "CallbackRejectionsAlarm", "PayoutUnresolvedAlarm"}
                | {f"{fn.logical_id}ErrorsAlarm" for fn in functions})
    assert set(found) == expected
    for alarm in found.values():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    dlq = found["CreditsDeadLetterAlarm"]
    assert (dlq["MetricName"], dlq["Threshold"], dlq["ComparisonOperator"]) == (
        "ApproximateNumberOfMessagesVisible", 0, "GreaterThanThreshold")
    assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["CreditsDeadLetterQueue",
                                                                                  "QueueName"]}}]


def test_alarm__reconciliation__matches_the_metric_the_reconciler_emits(capsys, monkeypatch):
    # GIVEN the deployed functions' environment (Powertools adds a `service` dimension from it)
    from chalicelib.reconcile import runner
    from chalicelib.settings import settings

    deployed_env = lambdas.config_on_disk()["environment_variables"]
    for name, value in deployed_env.items():
        monkeypatch.setenv(name, value)
    # WHEN the reconciler reports a run (CloudWatch embedded metric format on stdout)
    runner._emit([], {"discrepancy_count": 0, "discrepancies": {}})
    emf = json.loads([line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line][-1])
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    emitted_dims = {name: emf[name] for name in directive["Dimensions"][0]}
    # AND the alarm for the same stage is built
    alarm = merge_template(settings().stage)["Resources"]["ReconciliationDiscrepancyAlarm"]["Properties"]
    # THEN namespace, metric name and the full dimension set agree (CloudWatch matches all three exactly)
    assert directive["Namespace"] == alarm["Namespace"] == "rewardgate"
    assert [m["Name"] for m in directive["Metrics"]] == [alarm["MetricName"]] == [alarms.DISCREPANCY_METRIC]
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == emitted_dims


def test_alarm__reconciliation_behind__matches_the_metric_and_fires_when_the_schedule_goes_silent(
        capsys, monkeypatch):
    from chalicelib.reconcile import runner
    from chalicelib.settings import settings

    deployed_env = lambdas.config_on_disk()["environment_variables"]
    for name, value in deployed_env.items():
        monkeypatch.setenv(name, value)
    # WHEN the schedule reports two late passes (and no backlog: its watermark is just before its window)
    from chalicelib import clock
    from chalicelib.reconcile import passes

    now_ms = clock.hour_start_ms("2026112210")
    runner._emit_behind([("2026112201", 2), ("2026112202", 2)],
                        runner.next_hour(passes.oldest_window_hour(now_ms), -1), now_ms)
    out = capsys.readouterr().out.splitlines()
    emf = json.loads([line for line in out if '"_aws"' in line][-1])
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    alarm = merge_template(settings().stage)["Resources"]["ReconciliationBehindAlarm"]["Properties"]
    # THEN the alarm watches exactly that metric, fires above 0, and treats a silent hour as breaching
    assert [m["Name"] for m in directive["Metrics"]] == [alarm["MetricName"]] == [alarms.BEHIND_METRIC]
    assert emf[alarms.BEHIND_METRIC] == [2.0]
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {n: emf[n] for n in directive["Dimensions"][0]}
    assert (alarm["Threshold"], alarm["Period"], alarm["TreatMissingData"]) == (0, 3600, "breaching")
    # AND the log line names the late passes
    assert any('"reconciliation behind"' in line and "2026-11-22T01 pass 2" in line for line in out)


def test_alarm__credits_queue_age__threshold_from_the_stage_config_not_the_packaging_shell(monkeypatch):
    # GIVEN a packaging shell that happens to carry another SLA
    monkeypatch.setenv("RG_ACCEPTED_SLA_S", "5")
    # WHEN the prod template is built
    alarm = merge_template("prod")["Resources"]["CreditsQueueAgeAlarm"]["Properties"]
    # THEN the threshold is what the deployed reconciler uses (the prod stage sets none: the 600 s default)
    assert alarm["Threshold"] == lambdas.deployed_settings("prod", "reconciler").accepted_sla_s == 600


def test_chalice_config__stages__name_their_stage_and_hold_no_secrets():
    # GIVEN .chalice/config.json
    config = lambdas.config_on_disk()
    # THEN each stage sets RG_STAGE to its own name, and the environment has only non-secret settings
    assert set(config["stages"]) == {"local", "prod"}
    for stage, body in config["stages"].items():
        assert body["environment_variables"]["RG_STAGE"] == stage
    names = set(config["environment_variables"]) | {n for s in config["stages"].values()
                                                    for n in s.get("environment_variables", {})}
    assert names == {"RG_LOG_LEVEL", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "RG_STAGE",
                     "RG_PAYOUT_PROVIDER", "RG_HOUR_BUCKETS"}
    text = json.dumps(config).lower()
    assert not [w for w in ("secret", "password", "private", "aes_key", "token") if w in text]
