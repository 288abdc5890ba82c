"""The generated IAM: one role per function, named resources only, exactly the declared grants."""

from __future__ import annotations

import functools
import json
import re

import pytest
from chalice import Chalice, Rate

from chalicelib.dynamo import all_models
from chalicelib.queues import ALL_QUEUES
from infra import iam, lambdas
from infra.functions import ACCESS
from infra.package import check_template, iam_statements
from infra.template import merge_template

STAGE = "prod"


@functools.cache
def merged() -> dict:
    return merge_template(STAGE)


def role_statements(role_id: str) -> dict[str, dict]:
    role = merged()["Resources"][role_id]
    (policy,) = role["Properties"]["Policies"]
    return {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}


def test_policies__every_role_and_managed_policy__no_wildcard_action_and_no_star_resource():
    # GIVEN every permission statement the merge template grants
    statements = iam_statements(merged())
    # THEN none uses an action wildcard or Resource "*"
    actions = [a for _, s in statements for a in s["Action"]]
    resources = [r for _, s in statements for r in s["Resource"]]
    print(f"statements={len(statements)} actions={len(actions)} resources={len(resources)}")
    assert statements
    assert [a for a in actions if "*" in a] == []
    assert "*" not in resources
    assert all(a.split(":")[0] in {"dynamodb", "sqs", "secretsmanager", "logs", "execute-api"} for a in actions)


def test_policies__every_function_of_the_app__has_its_own_role_from_access():
    # GIVEN the functions Chalice will deploy
    functions = lambdas.functions(STAGE)
    # THEN each has a declaration, its own role, and its function uses that role
    assert {fn.name for fn in functions} == set(ACCESS)
    for fn in functions:
        override = merged()["Resources"][fn.logical_id]["Properties"]
        assert override["Role"] == {"Fn::GetAtt": [fn.role_id, "Arn"]}
        assert merged()["Resources"][fn.role_id]["Type"] == "AWS::IAM::Role"


def test_access__declared_tables_queues_and_indexes__exist():
    # GIVEN the table models and their indexes
    indexes = {m.Meta.logical_name: {i.Meta.index_name for i in m._indexes.values()} for m in all_models()}
    # THEN every declared table, queue and index exists
    assert iam.unknown_declarations(lambdas.functions(STAGE), set(indexes)) == []
    for name, access in ACCESS.items():
        for table, grant in access.tables.items():
            assert set(grant.indexes) <= indexes[table], (name, table)
            # Nothing is ever deleted, except WebSocket connections (ephemeral: gone when the socket closes).
            deletable = {"DeleteItem"} if table == "live-connections" else set()
            assert set(grant.actions) <= {"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", *deletable}, \
                (name, table)


def test_policy__credit_worker__consumes_credits_and_writes_only_crediting_tables():
    # GIVEN the credit worker's role
    statements = role_statements("CreditWorkerRole")
    # THEN it polls the credits queue, writes the crediting tables, reads no secret and sends nothing
    assert statements["Consumecredits"]["Action"] == ["sqs:DeleteMessage", "sqs:GetQueueAttributes",
                                                      "sqs:ReceiveMessage"]
    assert statements["Consumecredits"]["Resource"] == [{"Fn::GetAtt": ["CreditsQueue", "Arn"]}]
    assert statements["walletsTable"]["Action"] == ["dynamodb:UpdateItem"]
    # an order is its wallet's ledger credit: crediting posts it (UpdateItem) and reads it on a repeat
    assert statements["ledgerTable"]["Action"] == ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    assert sorted(statements) == ["Consumecredits", "OwnLogs", "countersTable", "ledgerTable", "walletsTable"]
    assert statements["OwnLogs"]["Resource"] == [{"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:"
                                                  "${AWS::AccountId}:log-group:/aws/lambda/"
                                                  "rewardgate-prod-credit_worker:*"}]


def test_policy__index_queries__granted_on_the_named_index_only():
    # GIVEN the rewards sweeper, which queries the sparse `unsent` and `payout_due` indexes
    statements = role_statements("RewardsSweeperRole")
    # THEN Query is granted on exactly those index ARNs, not on `/index/*`
    assert statements["ledgerIndexes"] == {
        "Sid": "ledgerIndexes", "Effect": "Allow", "Action": ["dynamodb:Query"],
        "Resource": [{"Fn::Sub": "${LedgerTable.Arn}/index/unsent"}],
    }
    assert statements["withdrawalsIndexes"]["Resource"] == [{"Fn::Sub": "${WithdrawalsTable.Arn}/index/payout_due"}]
    assert "dynamodb:Query" not in statements["ledgerTable"]["Action"]


def test_policy__secrets__only_api_reads_them_and_only_under_the_stage_prefix():
    # GIVEN every role's secret grants
    readers = {}
    for role_id, resource in merged()["Resources"].items():
        if resource.get("Type") == "AWS::IAM::Role":
            readers[role_id] = role_statements(role_id).get("ReadSecrets")
    # THEN only the API function (signing key, tp-app credentials, the play key and the play apps' access keys),
    # the callback function (tp-app credentials only) and $connect (the play key, to verify an auth_body) read
    # secrets, under this stage's prefix
    assert {k for k, v in readers.items() if v} == {"APIHandlerRole", "CallbackHandlerRole", "WebsocketConnectRole"}
    assert readers["WebsocketConnectRole"]["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                    "rewardgate/prod/play-key-??????"}]
    assert readers["CallbackHandlerRole"]["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                    "rewardgate/prod/tp-apps/*"}]
    assert readers["APIHandlerRole"]["Action"] == ["secretsmanager:GetSecretValue"]
    prefix = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:rewardgate/prod/"
    assert readers["APIHandlerRole"]["Resource"] == [
        {"Fn::Sub": prefix + name}
        for name in ("play-apps/*", "play-key-??????", "reward-token-key-??????", "tp-apps/*")
    ]


def test_merge_template__function_without_access__refuses_to_package():
    # GIVEN an app with a scheduled function nobody declared access for
    app = Chalice(app_name="rewardgate")

    @app.route("/v1/ping")
    def ping() -> dict:
        return {}

    @app.schedule(Rate(5, unit=Rate.MINUTES))
    def orphan_job(event: object) -> None:
        return None

    # WHEN the merge template is built THEN it names the function and where to declare it
    with pytest.raises(ValueError, match=r"infra/functions.py ACCESS for: orphan_job"):
        merge_template(STAGE, app=app)


def test_merge_template__route_without_a_declared_operation__refused():
    # GIVEN an app with a route declared without its operation (no access, no models)
    app = Chalice(app_name="rewardgate")

    @app.route("/debug")
    def debug() -> dict:
        return {}

    # WHEN routes are classified THEN the route is refused rather than silently left public
    with pytest.raises(ValueError, match="GET /debug has no declared operation"):
        lambdas.routes(app)


def test_check_template__wildcard_grant__reported():
    # GIVEN the merge template with one statement widened to dynamodb:* on "*"
    template = json.loads(json.dumps(merged()))
    role = template["Resources"]["CreditWorkerRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    role["Statement"].append({"Sid": "Wide", "Effect": "Allow", "Action": ["dynamodb:*"], "Resource": "*"})
    # WHEN checked THEN both the action and the resource are reported
    problems = [p for p in check_template(template) if "CreditWorkerRole" in p]
    assert problems == ["CreditWorkerRole: wildcard action dynamodb:*",
                        "CreditWorkerRole: Resource '*' for ['dynamodb:*']"]


def test_api_caller_policies__every_iam_route__in_some_caller_policy_and_no_callback_in_any():
    resources = merged()["Resources"]
    granted = set()
    for lid in ("AdminApiPolicy", "GrantServicePolicy", "WalletServicePolicy", "ReadOnlyApiPolicy",
                "LivePlatformPolicy", "CallbackCredentialsPolicy"):
        (statement,) = resources[lid]["Properties"]["PolicyDocument"]["Statement"]
        granted |= {r["Fn::Sub"].split("/api/", 1)[1] for r in statement["Resource"]}
    private = {f"{r.method.upper()}{re.sub(r'{[^}]+}', '*', r.path)}" for r in lambdas.routes() if not r.public}
    assert granted == private
    assert not [a for a in granted if "callbacks" in a or "well-known" in a or "/v2/app/" in a]


def test_queues__every_consumed_queue__visibility_at_least_six_times_consumer_timeout():
    # GIVEN the consumers' timeouts from .chalice/config.json and the queue definitions
    consumers = {fn.queue.logical: fn for fn in lambdas.functions(STAGE) if fn.queue}
    # THEN every queue has a consumer whose timeout fits its visibility window
    assert set(consumers) == {spec.logical for spec in ALL_QUEUES}
    for spec in ALL_QUEUES:
        timeout_s = consumers[spec.logical].timeout_s
        print(f"{spec.logical}: visibility={spec.visibility_timeout_s}s consumer_timeout={timeout_s}s")
        assert spec.visibility_timeout_s >= 6 * consumers[spec.logical].timeout_s


def test_callback_function__role__no_rewards_table_and_callback_routes_integrate_with_it():
    # GIVEN the merged template
    resources = merged()["Resources"]
    statements = role_statements("CallbackHandlerRole")
    tables = {r["Fn::GetAtt"][0] for s in statements.values() for r in s["Resource"]
              if isinstance(r, dict) and "Fn::GetAtt" in r and r["Fn::GetAtt"][0].endswith("Table")}
    # THEN its role reaches the events table alone (no orders, ledger, wallets, counters, withdrawals, config)
    assert tables == {"EventsTable"}
    assert statements["eventsTable"]["Action"] == ["dynamodb:PutItem"]
    # AND API Gateway sends the two callback routes to it, and every other route to the API function
    paths = resources["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    for path in ("/callbacks/{tp_app_id}/auth", "/callbacks/{tp_app_id}/events"):
        uri = paths[path]["post"]["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
        assert "${CallbackHandler.Arn}" in uri
    assert all("x-amazon-apigateway-integration" not in m for p, ms in paths.items() if not p.startswith("/callbacks/")
               for m in ms.values())
    assert resources["CallbackHandler"]["Properties"]["Handler"] == "chalicelib.routes.callback_function.app"


def test_caller_policies__one_per_kind__each_only_its_routes():
    resources = merged()["Resources"]

    def routes_of(lid):
        (statement,) = resources[lid]["Properties"]["PolicyDocument"]["Statement"]
        return {r["Fn::Sub"].rsplit("${RestAPI}/api/", 1)[1] for r in statement["Resource"]}

    assert routes_of("GrantServicePolicy") == {"POST/v1/grants", "POST/v1/grants/batch"}
    assert routes_of("WalletServicePolicy") == {
        "GET/v1/wallets/*", "GET/v1/wallets/*/flow", "POST/v1/wallets/*/withdrawals", "GET/v1/wallets/*/withdrawals/*"}
    assert routes_of("AdminApiPolicy") == {
        "PUT/v1/admin/activities/*", "PUT/v1/admin/activities/*/scenes/*", "PUT/v1/admin/switches/*",
        "POST/v1/admin/reconciliations", "PUT/v1/admin/play-apps/*"}
    assert routes_of("LivePlatformPolicy") == {
        "POST/v1/play/anchors/*/code", "POST/v1/play/anchors/*/code/refresh", "POST/v1/play/rooms/*/events"}
    read_only = routes_of("ReadOnlyApiPolicy")
    assert all(r.startswith("GET/v1/") for r in read_only) and "GET/v1/admin/switches" in read_only
    assert not any(r.startswith(("POST", "PUT")) for r in read_only)


def test_gateway_responses__every_refusal__problem_json():
    body = merged()["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    responses = body["x-amazon-apigateway-gateway-responses"]
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "ACCESS_DENIED", "THROTTLED", "MISSING_AUTHENTICATION_TOKEN",
            "WAF_FILTERED"} <= set(responses)
    for kind, response in responses.items():
        assert response["responseParameters"]["gatewayresponse.header.Content-Type"] == "'application/problem+json'"
        template = response["responseTemplates"]["application/json"]
        rendered = json.loads(template.replace("$context.error.messageString", '"msg"'))
        assert rendered["type"].startswith("urn:rewardgate:problem:") and rendered["code"], kind
    assert json.loads(responses["THROTTLED"]["responseTemplates"]["application/json"].replace(
        "$context.error.messageString", '"m"'))["status"] == 429


def test_policy__manage_connections__only_the_pushing_functions_and_only_this_websocket_api():
    # GIVEN every role's @connections grant
    granted = {role_id: role_statements(role_id).get("ManageConnections")
               for role_id, resource in merged()["Resources"].items() if resource.get("Type") == "AWS::IAM::Role"}
    # THEN only the push worker and the $default handler may post to or close connections, of this stack's
    # WebSocket API and stage, with POST and DELETE only
    assert {k for k, v in granted.items() if v} == {"LivePushRole", "WebsocketMessageRole"}
    for role_id in ("LivePushRole", "WebsocketMessageRole"):
        assert granted[role_id]["Action"] == ["execute-api:ManageConnections"]
        assert granted[role_id]["Resource"] == [
            {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebsocketAPI}/api/"
                        f"{method}/@connections/*"} for method in ("POST", "DELETE")]
