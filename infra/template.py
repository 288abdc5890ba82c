"""CloudFormation for rewardgate, generated from the one definition in `chalicelib`.

Tables come from the PynamoDB models (`chalicelib.dynamo.all_models`), queues from
`chalicelib.queues`: `data_resources(stage)`. The local stack creates its tables and queues from the
very same resource dicts (`infra.provision`), so the two cannot drift.

`merge_template(stage)` is what `make package` hands to `chalice package --merge-template`: the data
resources plus one IAM role per function (`infra.iam`), alarms (`infra.alarms`), and the properties
Chalice cannot express (partial batch failures on every SQS event source, the queue ARNs as
references, IAM authorization on `/v1/`, explicit function names). Chalice deep-merges it into its
own SAM template: dicts merge key by key, anything else in this template replaces Chalice's value.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from pynamodb.models import Model

from chalicelib.dynamo import all_models
from chalicelib.queues import ALL_QUEUES, QueueSpec
from chalicelib.settings import resource_name
from infra import alarms, edge, iam, lambdas
from infra.iam import WEBSOCKET_STAGE
from infra.names import logical_id

if TYPE_CHECKING:  # hints only: the local stack imports this module and needs nothing of Chalice
    from infra.lambdas import LambdaFunction, Route


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


# --- the merge template --------------------------------------------------------------------------

SIGV4 = "sigv4"  # the security scheme name Chalice's own IAMAuthorizer uses
# The Lambda runtime follows the Python of the environment that packages (as `chalice package` does).
RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"


def _lambda_overrides(fn: LambdaFunction, stage: str) -> dict[str, Any]:
    props: dict[str, Any] = {
        "FunctionName": fn.physical_name(stage),
        "Role": {"Fn::GetAtt": [fn.role_id, "Arn"]},
    }
    if fn.queue is not None:
        if fn.timeout_s > fn.queue.worker_timeout_s:
            raise ValueError(
                f"{fn.name} times out after {fn.timeout_s} s but queue {fn.queue.logical} is sized for "
                f"{fn.queue.worker_timeout_s} s (visibility {fn.queue.visibility_timeout_s} s must be >= 6x the "
                "timeout): align .chalice/config.json lambda_timeout with chalicelib/queues.py")
        # `Queue` stays Chalice's (an ARN built from the stage's queue name): a merge can only add
        # keys to that dict, not swap the intrinsic. The role's policy references the queue, which
        # orders the event source after the queue's creation.
        event: dict[str, Any] = {
            # Without it Lambda ignores `batchItemFailures` and deletes a failed record with its batch.
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        }
        if fn.reserved_concurrency:
            # The event source stops scaling at the reserved concurrency instead of being throttled
            # there; throttled receives would count towards maxReceiveCount and fill the DLQ.
            if fn.reserved_concurrency < 2:
                raise ValueError(f"{fn.name}: an SQS event source needs a reserved concurrency of at least 2")
            event["ScalingConfig"] = {"MaximumConcurrency": fn.reserved_concurrency}
        props["Events"] = {fn.sqs_event_id: {"Properties": event}}
    variables = _live_environment(fn)
    if variables:
        props["Environment"] = {"Variables": variables}
    override: dict[str, Any] = {"Properties": props, "Metadata": {"checkov": {"skip": _lambda_skips(fn)}}}
    if fn.log_retention_days:
        # The function has no logs:CreateLogGroup: its group must exist before its first invocation.
        override["DependsOn"] = [fn.log_group_id]
    return override


WEBSOCKET_DOMAIN = "${WebsocketAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"


def _live_environment(fn: LambdaFunction) -> dict[str, Any]:
    """Live push's addresses, known only once the WebSocket API exists: the `@connections` endpoint for the
    functions that post, the `wss_link` a start answers for the API."""
    from infra.functions import ACCESS

    variables: dict[str, Any] = {}
    access = ACCESS.get(fn.name)
    if access is not None and access.manage_connections:
        variables["RG_LIVE_CONNECTIONS_URL"] = {"Fn::Sub": "https://" + WEBSOCKET_DOMAIN + WEBSOCKET_STAGE}
    if fn.kind == "api":
        variables["RG_PLAY_WSS_LINKS"] = {"Fn::Sub": "wss://" + WEBSOCKET_DOMAIN + WEBSOCKET_STAGE}
    return variables


def _lambda_skips(fn: LambdaFunction) -> list[dict[str, str]]:
    skips = [
        {"id": "CKV_AWS_117", "comment": "No VPC: the function reaches only DynamoDB, SQS, Secrets Manager and "
                                         "CloudWatch over their IAM-authenticated public endpoints; a VPC would "
                                         "add NAT gateways or endpoints and cold-start cost without narrowing access."},
        {"id": "CKV_AWS_173", "comment": "The environment holds no secrets (stage name, log level, service name); "
                                         "secrets are read from Secrets Manager at run time."},
    ]
    if fn.kind == "sqs":
        skips.append({"id": "CKV_AWS_116", "comment": "SQS-triggered: failed records go to the queue's own DLQ "
                                                      "(RedrivePolicy); a Lambda DLQ applies only to async invokes."})
    elif fn.kind == "schedule":
        skips.append({"id": "CKV_AWS_116", "comment": "Scheduled sweep: the next run (minutes later) redoes whatever a "
                                                      "failed run left; a failed run raises the Errors alarm."})
    else:  # the REST API's and the WebSocket API's handlers
        skips.append({"id": "CKV_AWS_116", "comment": "Invoked synchronously by API Gateway; a Lambda DLQ applies only "
                                                      "to asynchronous invocations."})
    if not fn.reserved_concurrency:
        why = {
            "api": "The API front door scales with traffic; a reservation would either cap it or hold idle "
                   "capacity. See docs/explanation/capacity.md.",
            "sqs": "Low-volume queue (platform callbacks); Lambda's SQS scaling is enough and a reservation "
                   "would only hold idle capacity.",
            "schedule": "One short run every few minutes; a throttled run is retried by the async invoke and "
                        "the next run catches up.",
            "websocket": "WebSocket connects, frames and disconnects scale with the clients; the stage's route "
                         "throttling bounds them, and a reservation would only cap them or hold idle capacity.",
        }[fn.kind]
        if fn.kind == "sqs" and fn.queue is not None and fn.queue.logical == "live":
            why = ("Live push scales with live events and connections; a reservation would delay pushes behind "
                   "a cap while the stream (the offline inbox) keeps every event anyway.")
        skips.append({"id": "CKV_AWS_115", "comment": why})
    return skips


# Inline justifications for scanner findings on the data resources (checkov reads Metadata.checkov).
DATA_SKIPS = {
    "AWS::DynamoDB::Table": [{
        "id": "CKV_AWS_119",
        "comment": "Encrypted at rest with the AWS-managed key (SSESpecification). A customer-managed key would "
                   "add key administration and a failure mode (a disabled key makes the table unreadable) "
                   "without changing who can read: access is the per-function IAM policies.",
    }],
    "AWS::SQS::Queue": [{
        "id": "CKV_AWS_27",
        "comment": "Encrypted at rest with SQS-managed keys (SqsManagedSseEnabled); the check only recognises "
                   "KmsMasterKeyId. Messages carry order ids and amounts, no secrets.",
    }],
}
API_SKIPS = [
    {"id": "CKV_AWS_120", "comment": "No caching: grants and withdrawals are writes, and wallet reads must show "
                                     "the latest balance."},
    {"id": "CKV_AWS_76", "comment": "No API Gateway access logs: they need the account-wide API Gateway CloudWatch "
                                    "role, which one application's stack must not own; the functions write one "
                                    "structured access line per request (route, status, latency, ids, caller ARN)."},
]


def _api_overrides(routes: list[Route], stage: str) -> dict[str, Any]:
    from chalice.app import IAMAuthorizer

    from infra.edge import api_properties

    edge = api_properties(routes)
    paths: dict[str, Any] = edge["DefinitionBody"].pop("paths")
    for route in routes:
        if not route.public:
            paths.setdefault(route.path, {})[route.method] = {"security": [{SIGV4: []}]}
    return {
        "Metadata": {"checkov": {"skip": API_SKIPS}},
        "Properties": {
            "Name": f"rewardgate-{stage}",
            **{k: v for k, v in edge.items() if k != "DefinitionBody"},
            "DefinitionBody": {
                "info": {"title": f"rewardgate-{stage}"},
                "securityDefinitions": {SIGV4: IAMAuthorizer().to_swagger()},
                **edge["DefinitionBody"],
                "paths": paths,
            },
        },
    }


# The WebSocket API's route throttling (messages/s across the stage, burst); raise with the account's quota.
WEBSOCKET_THROTTLE_RATE = 2_000
WEBSOCKET_THROTTLE_BURST = 1_000
WEBSOCKET_ROUTE_SKIP = {"id": "CKV_AWS_309", "comment": "No API Gateway authorizer: $connect authenticates the "
                        "game's auth_body (a signed, short-lived token) in its handler and refuses the handshake "
                        "(401) otherwise; $default and $disconnect act only on the connection $connect admitted."}


def _websocket_overrides() -> dict[str, Any]:
    """What the WebSocket API Chalice generates needs beyond it: stage throttling, and the scanner's notes."""
    from infra.edge import websocket_route_settings

    routes = {lid: {"Metadata": {"checkov": {"skip": [WEBSOCKET_ROUTE_SKIP]}}}
              for lid in ("WebsocketConnectRoute", "WebsocketMessageRoute", "WebsocketDisconnectRoute")}
    return routes | {"WebsocketAPIStage": {
        "Metadata": {"checkov": {"skip": [{
            "id": "CKV_AWS_95", "comment": "No API Gateway access logs (they need the account-wide API Gateway "
                                           "CloudWatch role, which one application's stack must not own); each "
                                           "handler writes one structured line per connect, frame and disconnect."}]}},
        "Properties": {"DefaultRouteSettings": {"ThrottlingRateLimit": WEBSOCKET_THROTTLE_RATE,
                                                "ThrottlingBurstLimit": WEBSOCKET_THROTTLE_BURST},
                       "RouteSettings": websocket_route_settings()},
    }}


def _log_group(fn: LambdaFunction, stage: str) -> dict[str, Any]:
    group: dict[str, Any] = {
        # A literal name (the function's name is fixed) instead of Chalice's `${Function}`, which
        # made the group wait for the function, and which names `ApiHandler` for the API
        # function after Chalice renamed that resource to `APIHandler`.
        "Properties": {"LogGroupName": f"/aws/lambda/{fn.physical_name(stage)}"},
        "Metadata": {"checkov": {"skip": [{
            "id": "CKV_AWS_158",
            "comment": "Logs are encrypted with CloudWatch Logs' own key; the log lines carry ids and counts, "
                       "never secrets or callback plaintext.",
        }]}},
    }
    if not fn.chalice_managed:
        group["Type"] = "AWS::Logs::LogGroup"
        group["Properties"]["RetentionInDays"] = fn.log_retention_days
    return group


def _outputs(stage: str, has_api: bool, has_websocket: bool = False) -> dict[str, Any]:
    outputs: dict[str, Any] = {
        "AlarmTopicArn": {"Description": "SNS topic every alarm notifies", "Value": {"Ref": "AlarmTopic"}},
        "SecretsPrefix": {"Description": "Secrets Manager names the functions may read",
                          "Value": f"rewardgate/{stage}/"},
    }
    if has_websocket:
        outputs["LivePushUrl"] = {"Description": "The WebSocket API (the wss_link /v2/app/start answers)",
                                  "Value": {"Fn::Sub": "wss://" + WEBSOCKET_DOMAIN + WEBSOCKET_STAGE}}
    if has_api:
        base = "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api"
        outputs |= {
            "AuthCallbackUrl": {"Description": "Platform console: authorization event / ticket push URL",
                                "Value": {"Fn::Sub": base + "/callbacks/{tp_app_id}/auth"}},
            "EventsCallbackUrl": {"Description": "Platform console: message and event push URL",
                                  "Value": {"Fn::Sub": base + "/callbacks/{tp_app_id}/events"}},
            "AdminApiPolicyArn": {"Description": "Attach to operators who change configuration (/v1/admin/ writes)",
                                  "Value": {"Ref": "AdminApiPolicy"}},
            "GrantServicePolicyArn": {"Description": "Attach to upstream services that grant rewards",
                                      "Value": {"Ref": "GrantServicePolicy"}},
            "WalletServicePolicyArn": {"Description": "Attach to the wallet service (balances, flow, withdrawals)",
                                       "Value": {"Ref": "WalletServicePolicy"}},
            "ReadOnlyApiPolicyArn": {"Description": "Attach to operators' read-only callers (every GET route but "
                                                    "users' wallets; callback credentials redacted)",
                                     "Value": {"Ref": "ReadOnlyApiPolicy"}},
            "CallbackCredentialsPolicyArn": {"Description": "Attach only to whoever must read a stored callback's "
                                                            "credentials (one event at a time, audited)",
                                             "Value": {"Ref": "CallbackCredentialsPolicy"}},
            "LivePlatformPolicyArn": {"Description": "Attach to the live platform's services (identity codes, "
                                                     "rooms' live events)",
                                      "Value": {"Ref": "LivePlatformPolicy"}},
        }
    return outputs


def merge_template(stage: str, app: Any = None) -> dict[str, Any]:
    """The template `chalice package --stage {stage} --merge-template` merges into Chalice's output."""
    functions = lambdas.functions(stage, app)
    missing = iam.undeclared_functions(functions)
    if missing:
        raise ValueError(f"no access declared in infra/functions.py ACCESS for: {', '.join(missing)}")
    routes = lambdas.routes(app) if any(fn.kind == "api" for fn in functions) else []
    api_stage = lambdas.chalice_config(stage, lambdas.API_HANDLER).api_gateway_stage
    resources = data_resources(stage)
    for resource in resources.values():
        resource["Metadata"] = {"checkov": {"skip": DATA_SKIPS[resource["Type"]]}}
    for fn in functions:
        resources[fn.role_id] = iam.role_resource(fn, stage)
        if fn.chalice_managed:
            resources[fn.logical_id] = _lambda_overrides(fn, stage)
        else:
            resources[fn.logical_id] = edge.callback_function(fn, stage, RUNTIME)
            resources[f"{fn.logical_id}InvokePermission"] = edge.callback_permission()
        if fn.log_retention_days:
            resources[fn.log_group_id] = _log_group(fn, stage)
    if any(fn.kind == "websocket" for fn in functions):
        resources |= _websocket_overrides()
    if routes:
        resources["RestAPI"] = _api_overrides(routes, stage)
        resources |= iam.api_caller_policies(routes, stage)
        resources |= edge.waf_resources(stage)
    resources |= edge.sampling_rule(stage)
    resources |= alarms.topic_resources(stage)
    resources |= alarms.alarm_resources(stage, functions, f"rewardgate-{stage}" if routes else None, api_stage)
    return {
        "Description": f"rewardgate {stage}: callback gateway, reward issuing and crediting, reconciliation",
        "Parameters": {
            alarms.EMAIL_PARAMETER: {"Type": "String", "Default": "",
                                     "Description": "E-mail address subscribed to the alarm topic (optional)"},
        },
        "Conditions": {alarms.HAS_EMAIL: {"Fn::Not": [{"Fn::Equals": [{"Ref": alarms.EMAIL_PARAMETER}, ""]}]}},
        "Resources": resources,
        "Outputs": _outputs(stage, bool(routes), any(fn.kind == "websocket" for fn in functions)),
    }
