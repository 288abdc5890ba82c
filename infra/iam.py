"""Least-privilege IAM, generated from `infra.functions.ACCESS` and the app's event sources.

One role per function. Its policy names every resource: table ARNs (and `/index/<name>` for each
index it queries), queue ARNs, secret ARNs under `rewardgate/{stage}/`, its own log group. No action
wildcard, no `Resource: "*"`. The only pattern characters are Secrets Manager's random six-character
suffix (`-??????`) and the `tp-apps/*` family of per-tp-app secrets.

The `/v1/` API uses IAM authorization; `api_caller_policies` are the managed policies an operator
attaches to the upstream services (and to admins) that call it.
"""

from __future__ import annotations

import re
from typing import Any

from chalicelib.queues import ALL_QUEUES, QueueSpec
from infra.functions import ACCESS, Access, TableAccess
from infra.lambdas import LambdaFunction, Route
from infra.names import logical_id

LAMBDA_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}
# What Lambda's SQS event source needs on the queue it polls (Lambda developer guide, "SQS").
CONSUME_ACTIONS = ("sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage")
# SendMessageBatch is authorized by sqs:SendMessage; the code looks queue URLs up by name.
SEND_ACTIONS = ("sqs:GetQueueUrl", "sqs:SendMessage")
DEPTH_ACTIONS = ("sqs:GetQueueAttributes", "sqs:GetQueueUrl")
LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")


def _sub(arn_tail: str) -> dict[str, str]:
    return {"Fn::Sub": "arn:${AWS::Partition}:" + arn_tail}


def table_arn(table: str) -> dict[str, Any]:
    """ARN of a table of this stack, by logical table name."""
    return {"Fn::GetAtt": [logical_id(table, "Table"), "Arn"]}


def index_arn(table: str, index: str) -> dict[str, Any]:
    """ARN of one index of a table of this stack."""
    return {"Fn::Sub": "${" + logical_id(table, "Table") + ".Arn}/index/" + index}


def queue_arn(queue: str, dlq: bool = False) -> dict[str, Any]:
    """ARN of a queue (or its DLQ) of this stack, by logical queue name."""
    return {"Fn::GetAtt": [logical_id(queue, "DeadLetterQueue" if dlq else "Queue"), "Arn"]}


def secret_arn(stage: str, name: str) -> dict[str, str]:
    """ARN pattern of a secret under `rewardgate/{stage}/`: Secrets Manager appends `-` and six characters."""
    suffix = "" if name.endswith("/*") else "-??????"
    return _sub("secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:" + f"rewardgate/{stage}/{name}{suffix}")


def log_group_arn(fn: LambdaFunction, stage: str) -> dict[str, str]:
    """The function's own log group (and its streams); the name is fixed because the function name is."""
    return _sub("logs:${AWS::Region}:${AWS::AccountId}:log-group:" + f"/aws/lambda/{fn.physical_name(stage)}:*")


# The WebSocket API's stage (Chalice's `api_gateway_stage`) and what a pushing function does to connections.
WEBSOCKET_STAGE = "api"
CONNECTION_METHODS = ("POST", "DELETE")


def connections_arn(method: str, stage: str = WEBSOCKET_STAGE) -> dict[str, str]:
    """`execute-api:ManageConnections` resource: this stack's WebSocket API, its stage, one method on any connection."""
    return _sub("execute-api:${AWS::Region}:${AWS::AccountId}:${WebsocketAPI}/" + f"{stage}/{method}/@connections/*")


def _statement(sid: str, actions: tuple[str, ...] | list[str], resources: list[Any]) -> dict[str, Any]:
    return {"Sid": re.sub(r"[^A-Za-z0-9]", "", sid), "Effect": "Allow", "Action": sorted(actions),
            "Resource": resources}


def _table_statements(name: str, access: TableAccess) -> list[dict[str, Any]]:
    statements = [_statement(f"{name}Table", [f"dynamodb:{a}" for a in access.actions], [table_arn(name)])]
    if access.indexes:
        # Indexes serve only queries, so they get their own statement with Query alone.
        statements.append(_statement(f"{name}Indexes", ["dynamodb:Query"],
                                     [index_arn(name, index) for index in access.indexes]))
    return statements


def access_for(fn: LambdaFunction) -> Access:
    """The declared access of a function; a function without a declaration cannot be packaged."""
    try:
        return ACCESS[fn.name]
    except KeyError:
        raise ValueError(f"function {fn.name} has no entry in infra/functions.py ACCESS: declare the tables, "
                         f"queues and secrets it uses before it can be deployed") from None


def policy_document(fn: LambdaFunction, stage: str) -> dict[str, Any]:
    """The complete policy of one function's role."""
    access = access_for(fn)
    statements = [_statement("OwnLogs", LOG_ACTIONS, [log_group_arn(fn, stage)])]
    for name in sorted(access.tables):
        statements += _table_statements(name, access.tables[name])
    if fn.queue is not None:
        statements.append(_statement(f"Consume{fn.queue.logical}", CONSUME_ACTIONS, [queue_arn(fn.queue.logical)]))
    if access.send_to:
        statements.append(_statement("SendTo", SEND_ACTIONS, [queue_arn(q) for q in sorted(access.send_to)]))
    if access.dlq_depth_of:
        statements.append(_statement("DeadLetterDepth", DEPTH_ACTIONS,
                                     [queue_arn(q, dlq=True) for q in sorted(access.dlq_depth_of)]))
    if access.manage_connections:
        statements.append(_statement("ManageConnections", ["execute-api:ManageConnections"],
                                     [connections_arn(m) for m in CONNECTION_METHODS]))
    if access.secrets:
        statements.append(_statement("ReadSecrets", ["secretsmanager:GetSecretValue"],
                                     [secret_arn(stage, s) for s in sorted(access.secrets)]))
    return {"Version": "2012-10-17", "Statement": statements}


# X-Ray's PutTraceSegments/PutTelemetryRecords have no resource-level permissions (their only resource
# is "*"), so the tracing grant is AWS's own managed policy for exactly those two actions.
XRAY_WRITE_POLICY = {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"}


def role_resource(fn: LambdaFunction, stage: str) -> dict[str, Any]:
    """The `AWS::IAM::Role` of one function (no RoleName: CloudFormation names it, so CAPABILITY_IAM suffices)."""
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": f"rewardgate {stage} {fn.name}: only what infra/functions.py grants it",
            "AssumeRolePolicyDocument": LAMBDA_TRUST_POLICY,
            "Policies": [{"PolicyName": f"{fn.name}-access", "PolicyDocument": policy_document(fn, stage)}],
            "ManagedPolicyArns": [XRAY_WRITE_POLICY],
        },
    }


def _invoke_arn(route: Route) -> dict[str, Any]:
    # execute-api ARNs end in /{stage}/{METHOD}/{path}; a path parameter matches one or more segments as *.
    path = re.sub(r"\{[^}]+\}", "*", route.path)
    return {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${RestAPI}/api/"
                       f"{route.method.upper()}{path}"}


# One managed policy per kind of caller (the operation's `access`, chalicelib/edge/registry.py); attach
# the one (or ones) a principal needs. Read-only covers every GET route that needs IAM except the wallet
# service's (users' balances, flows and withdrawals).
CALLER_POLICIES = {
    "AdminApiPolicy": ("admin", "operators' changes: activities, scenes, switches, reconciliations, play apps"),
    "GrantServicePolicy": ("grant", "upstream services granting rewards: grants and batch grants"),
    "WalletServicePolicy": ("wallet", "the wallet service: balances, flow, withdrawals"),
    "ReadOnlyApiPolicy": ("read", "operators' read-only callers (on-call, dashboards): every GET route but users' "
                                  "wallets, with callback credentials redacted"),
    "LivePlatformPolicy": ("platform", "the live platform's services: streamers' identity codes, rooms' live events"),
    "CallbackCredentialsPolicy": ("credentials", "an operator who must see a stored callback's credentials "
                                                 "(tickets, authorization codes): one event at a time, audited"),
}


def caller_routes(routes: list[Route], kind: str) -> list[Route]:
    """The IAM-authorized routes a caller kind's managed policy allows."""
    private = [r for r in routes if not r.public]
    if kind == "read":
        # Users' wallets, flows and withdrawals are the wallet service's (user-facing) to read, not operators'.
        # Callback credentials are the audited `credentials` policy's alone.
        return [r for r in private if r.method == "get" and r.access not in ("wallet", "credentials")]
    return [r for r in private if r.access == kind]


def api_caller_policies(routes: list[Route], stage: str) -> dict[str, Any]:
    """Managed policies to attach to callers, one per caller kind (see CALLER_POLICIES)."""
    resources = {}
    for lid, (kind, what) in CALLER_POLICIES.items():
        members = caller_routes(routes, kind)
        if not members:
            continue
        resources[lid] = {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {
                "Description": f"Invoke the rewardgate {stage} API as {what}",
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                    _statement("InvokeApi", ["execute-api:Invoke"], [_invoke_arn(r) for r in members]),
                ]},
            },
        }
    return resources


def consumed_queues(functions: list[LambdaFunction]) -> dict[str, QueueSpec]:
    """Queue logical name -> spec, for every queue some function consumes."""
    return {fn.queue.logical: fn.queue for fn in functions if fn.queue is not None}


def undeclared_functions(functions: list[LambdaFunction]) -> list[str]:
    """Functions of the app with no ACCESS entry."""
    return sorted(fn.name for fn in functions if fn.name not in ACCESS)


def unknown_declarations(functions: list[LambdaFunction], table_names: set[str]) -> list[str]:
    """ACCESS entries that name a function, table or queue that does not exist."""
    problems = []
    names = {fn.name for fn in functions}
    queues = {spec.logical for spec in ALL_QUEUES}
    for name, access in ACCESS.items():
        if name not in names:
            problems.append(f"ACCESS declares {name}, which the app does not deploy")
        problems += [f"{name}: unknown table {t}" for t in access.tables if t not in table_names]
        problems += [f"{name}: unknown queue {q}" for q in (*access.send_to, *access.dlq_depth_of) if q not in queues]
    return problems
