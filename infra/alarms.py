"""CloudWatch alarms and the SNS topic they notify.

- every dead-letter queue: a message in it means a record failed `maxReceiveCount` times;
- reconciliation: the `ReconciliationDiscrepancies` metric the reconciler emits (EMF) is above 0; its
  `ReconciliationPassesBehind` metric is above 0 or missing for an hour (a pass is late, or the schedule
  stopped);
- every function: an invocation failed as a whole (unhandled error or timeout). Per-record failures
  of the SQS workers are not errors; they show up as redeliveries and, in the end, as DLQ depth;
- the credits queue: its oldest message is older than the ACCEPTED SLA (crediting falls behind);
- the API: more than 1% of requests answered 5xx in five minutes, by the functions' own `Requests` and
  `ServerErrors` metrics: deliberate refusals (a switch turned off, no payout provider) answer 503
  without counting as errors, so they do not page anyone;
- live push: its queue's oldest message is older than a minute (WebSocket clients are behind);
- callbacks: many rejected in five minutes (`CallbackRejected`, any reason): keys rotated on one side
  only, or someone forging callbacks;
- payouts: a withdrawal's payout unresolved (the provider still processing, answers lost) longer than
  `RG_PAYOUT_UNRESOLVED_ALARM_S` (`PayoutsUnresolvedPastHorizon`, counted by the rewards sweeper at each
  check of such a payout; its checks back off to at most 30 minutes, so each hour counts it).
"""

from __future__ import annotations

from typing import Any

from chalicelib.observability import NAMESPACE, SERVICE
from chalicelib.queues import ALL_QUEUES, CREDITS, LIVE
from infra.lambdas import LambdaFunction, deployed_settings
from infra.names import logical_id

TOPIC_ID = "AlarmTopic"
EMAIL_PARAMETER = "AlarmEmail"
HAS_EMAIL = "HasAlarmEmail"
DISCREPANCY_METRIC = "ReconciliationDiscrepancies"
BEHIND_METRIC = "ReconciliationPassesBehind"
API_5XX_RATE = 0.01
CALLBACK_REJECTIONS = 50  # per five minutes
LIVE_AGE_S = 60  # a push message waiting longer means clients see events that late
# The documentation site (mkdocs.yml's site_url is read from here); every alarm's description ends with the
# address of its runbook page, docs/operations/alarms/<page>.md.
DOCS_URL = "https://rewardgate.example.com/docs/"
RUNBOOKS = f"{DOCS_URL}operations/alarms/"
PAYOUT_UNRESOLVED_METRIC = "PayoutsUnresolvedPastHorizon"


def discrepancy_dimensions(stage: str) -> dict[str, str]:
    """The dimensions the reconciler's metric carries: its `stage` plus Powertools' `service`."""
    return {"stage": stage, "service": SERVICE}


def _alarm(stage: str, name: str, description: str, metric: dict[str, Any], *, threshold: float,
           statistic: str = "Maximum", period_s: int = 300, missing_data: str = "notBreaching") -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": f"rewardgate-{stage}-{name}",
            "AlarmDescription": description,
            **metric,
            "Statistic": statistic,
            "Period": period_s,
            "EvaluationPeriods": 1,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            # Mostly, no data means nothing happened (no DLQ message, no invocation), not a failure.
            "TreatMissingData": missing_data,
            "AlarmActions": [{"Ref": TOPIC_ID}],
            "OKActions": [{"Ref": TOPIC_ID}],
        },
    }


def _dims(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"Name": k, "Value": v} for k, v in values.items()]


def topic_resources(stage: str) -> dict[str, Any]:
    """The alarm topic, and an e-mail subscription when the `AlarmEmail` parameter is given."""
    return {
        TOPIC_ID: {
            "Type": "AWS::SNS::Topic",
            "Metadata": {"checkov": {"skip": [{
                "id": "CKV_AWS_26",
                "comment": "Alarm notifications carry only alarm names and states. CloudWatch cannot publish to "
                           "a topic encrypted with the AWS-managed SNS key, and a customer key would cost more "
                           "than the confidentiality of alarm states is worth.",
            }]}},
            "Properties": {"TopicName": f"rewardgate-{stage}-alarms", "DisplayName": f"rewardgate {stage} alarms"},
        },
        "AlarmEmailSubscription": {
            "Type": "AWS::SNS::Subscription",
            "Condition": HAS_EMAIL,
            "Properties": {"TopicArn": {"Ref": TOPIC_ID}, "Protocol": "email", "Endpoint": {"Ref": EMAIL_PARAMETER}},
        },
    }


def alarm_resources(stage: str, functions: list[LambdaFunction], api_name: str | None,
                    api_stage: str = "api") -> dict[str, Any]:
    """Every alarm of a stage, keyed by logical id."""
    resources: dict[str, Any] = {}
    for spec in ALL_QUEUES:
        dlq = logical_id(spec.logical, "DeadLetterQueue")
        resources[logical_id(spec.logical, "DeadLetterAlarm")] = _alarm(
            stage, f"{spec.logical}-dlq-not-empty",
            f"Messages are waiting in the {spec.logical} dead-letter queue: each failed {spec.max_receive_count} "
            f"times. Inspect them, fix the cause, then redrive. Runbook: {RUNBOOKS}{spec.logical}-dlq-not-empty/",
            {"Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
             "Dimensions": _dims({"QueueName": {"Fn::GetAtt": [dlq, "QueueName"]}})},
            threshold=0, period_s=60,
        )
    resources["ReconciliationDiscrepancyAlarm"] = _alarm(
        stage, "reconciliation-discrepancies",
        "Reconciliation found orders, ledger entries, wallets or counters that disagree. "
        "GET /v1/admin/reconciliations/{hour} lists them. "
        f"Runbook: {RUNBOOKS}reconciliation-discrepancies/",
        {"Namespace": NAMESPACE, "MetricName": DISCREPANCY_METRIC, "Dimensions": _dims(discrepancy_dimensions(stage))},
        threshold=0,
    )
    resources["ReconciliationBehindAlarm"] = _alarm(
        stage, "reconciliation-behind",
        "An hourly reconciliation pass did not finish in its hour and is still unfinished, or the reconciler "
        "has not run for an hour (no data). The reconciler's log line 'reconciliation behind' names the passes; "
        "rewardgate reconcile --hour H runs one by hand. "
        f"Runbook: {RUNBOOKS}reconciliation-behind/",
        {"Namespace": NAMESPACE, "MetricName": BEHIND_METRIC, "Dimensions": _dims(discrepancy_dimensions(stage))},
        threshold=0, period_s=3600, missing_data="breaching",
    )
    resources["PayoutUnresolvedAlarm"] = _alarm(
        stage, "payouts-unresolved",
        "A withdrawal's payout is unresolved (provider processing, answers lost, or a payout id it holds with other "
        "content) longer than RG_PAYOUT_UNRESOLVED_ALARM_S. The money stays debited, never refunded blindly; the "
        "rewards sweeper's log line 'payout unresolved past the alarm horizon' names each one: ask the provider. "
        f"Runbook: {RUNBOOKS}payouts-unresolved/",
        {"Namespace": NAMESPACE, "MetricName": PAYOUT_UNRESOLVED_METRIC,
         "Dimensions": _dims(discrepancy_dimensions(stage))},
        threshold=0, statistic="Sum", period_s=3600,
    )
    for fn in functions:
        resources[f"{fn.logical_id}ErrorsAlarm"] = _alarm(
            stage, f"{fn.name}-errors",
            f"{fn.name} failed whole invocations (unhandled error or timeout); see its log group. "
            f"Runbook: {RUNBOOKS}function-errors/#{fn.name.replace('_', '-')}",
            {"Namespace": "AWS/Lambda", "MetricName": "Errors",
             "Dimensions": _dims({"FunctionName": {"Ref": fn.logical_id}})},
            threshold=0, statistic="Sum",
        )
    # The SLA the deployed reconciler re-drives after, from the stage's configuration.
    sla_s = deployed_settings(stage, "reconciler").accepted_sla_s
    resources[logical_id(CREDITS.logical, "QueueAgeAlarm")] = _alarm(
        stage, f"{CREDITS.logical}-queue-behind",
        f"The oldest credit message is older than the ACCEPTED SLA ({sla_s} s): crediting is slower than granting. "
        f"Runbook: {RUNBOOKS}{CREDITS.logical}-queue-behind/",
        {"Namespace": "AWS/SQS", "MetricName": "ApproximateAgeOfOldestMessage",
         "Dimensions": _dims({"QueueName": {"Fn::GetAtt": [logical_id(CREDITS.logical, "Queue"), "QueueName"]}})},
        threshold=sla_s, period_s=60,
    )
    if any(fn.queue is LIVE for fn in functions):
        resources[logical_id(LIVE.logical, "QueueAgeAlarm")] = _alarm(
            stage, f"{LIVE.logical}-queue-behind",
            f"The oldest live push message is older than {LIVE_AGE_S} s: WebSocket clients receive events late "
            "(the push worker is throttled or failing; see its errors alarm and log group). Nothing is lost: clients "
            "catch up from the stream when the worker does, or pull /v2/app/events. "
            f"Runbook: {RUNBOOKS}{LIVE.logical}-queue-behind/",
            {"Namespace": "AWS/SQS", "MetricName": "ApproximateAgeOfOldestMessage",
             "Dimensions": _dims({"QueueName": {"Fn::GetAtt": [logical_id(LIVE.logical, "Queue"), "QueueName"]}})},
            threshold=LIVE_AGE_S, period_s=60)
    if api_name is not None:
        dims = _dims(discrepancy_dimensions(stage))

        def stat(metric_id: str, name: str) -> dict[str, Any]:
            return {"Id": metric_id, "ReturnData": False, "MetricStat": {
                "Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dims},
                "Period": 300, "Stat": "Sum"}}

        alarm = _alarm(
            stage, "api-5xx",
            f"More than {API_5XX_RATE:.0%} of API requests answered 5xx over five minutes (storage unavailable, "
            "crashes). Deliberate refusals (switched_off, payout_unavailable) do not count. Platform callbacks "
            "answered 5xx are retried by the platform. The access lines with status >= 500 name the routes. "
            f"Runbook: {RUNBOOKS}api-5xx/",
            {}, threshold=API_5XX_RATE)
        props = alarm["Properties"]
        for key in ("Statistic", "Period"):
            props.pop(key)
        props["Metrics"] = [stat("errors", "ServerErrors"), stat("requests", "Requests"),
                            {"Id": "rate", "Expression": "errors / requests", "ReturnData": True,
                             "Label": "share of requests answered 5xx"}]
        resources["Api5xxAlarm"] = alarm
        resources["CallbackRejectionsAlarm"] = _alarm(
            stage, "callback-rejections",
            f"More than {CALLBACK_REJECTIONS} platform callbacks were rejected in five minutes. By reason "
            "(metric CallbackRejected, dimension `reason`): signature/padding/receiver_id after a key or token "
            "change on one side only (run `rewardgate tp-app add` with the platform console's values); "
            "unknown_tp_app or stale timestamps in bulk: forgery (the WAF rate rule limits it). "
            f"Runbook: {RUNBOOKS}callback-rejections/",
            {"Namespace": NAMESPACE, "MetricName": "CallbacksRejected", "Dimensions": dims},
            threshold=CALLBACK_REJECTIONS, statistic="Sum")
    return resources
