"""Every AWS call each function makes is allowed by the IAM policy the template gives its role.

The scenario drives every function through its real handler on DynamoDB Local and moto (routes via
the Chalice test client; the SQS workers through the local event source; the schedules called
directly), records each botocore call with the function it ran under, turns it into the IAM action
and resource ARN AWS would authorize, and evaluates that against the generated policy (stage
`local`, fake account). Paths the scenario does not reach are not proven by this test; the grants it
never used are printed so a reviewer can see what is granted on reading the code alone.
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.client import BaseClient

from chalicelib import clock
from chalicelib.queues import EVENTS
from chalicelib.settings import settings
from infra.template import merge_template
from tests.callback_factory import EventsQueue, new_credentials, platform_body, post
from tests.rewards_support import (
    call,
    chalice_client,
    deliver_credits,
    drain_queue,
    install_signing_key,
    make_campaign,
    payout_mode,
    purge_credits,
    reset_process_state,
    withdrawal_body,
)

ACCOUNT, REGION = "123456789012", "us-east-1"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com",
          # the WebSocket API's id as the deployed @connections endpoint names it (`Ref: WebsocketAPI`)
          "WebsocketAPI": "wsapi12345"}
_CONNECTION_METHODS = {"PostToConnection": "POST", "DeleteConnection": "DELETE", "GetConnection": "GET"}


class Recorder:
    """Which function is running, and every (service, operation, params) it called."""

    def __init__(self) -> None:
        self.function: str | None = None
        self.calls: dict[str, list[tuple[str, str, dict[str, Any]]]] = defaultdict(list)

    @contextlib.contextmanager
    def acting(self, function: str) -> Iterator[None]:
        self.function = function
        try:
            yield
        finally:
            self.function = None


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    original = BaseClient._make_api_call

    def recording(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if recorder.function is not None:  # threads of a handler (the reconciler's pool) count too
            recorder.calls[recorder.function].append((client.meta.service_model.service_name, operation, params))
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return recorder


# --- from a recorded call to what IAM authorizes ----------------------------------------------------

def _table(name: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


def _queue(url_or_name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{url_or_name.rstrip('/').rsplit('/', 1)[-1]}"


_TRANSACT_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
_SQS_BATCH = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
              "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}


def authorizations(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """The (action, resource ARN) pairs AWS checks for one API call."""
    if service == "dynamodb":
        if operation in ("TransactWriteItems", "TransactGetItems"):
            return [(f"dynamodb:{_TRANSACT_ACTIONS[kind]}", _table(body["TableName"]))
                    for item in params["TransactItems"] for kind, body in item.items()]
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [(f"dynamodb:{operation}", _table(name)) for name in params["RequestItems"]]
        arn = _table(params["TableName"])
        if params.get("IndexName"):
            arn += f"/index/{params['IndexName']}"
        return [(f"dynamodb:{operation}", arn)]
    if service == "sqs":
        target = params.get("QueueUrl") or params["QueueName"]
        return [(f"sqs:{_SQS_BATCH.get(operation, operation)}", _queue(target))]
    if service == "apigatewaymanagementapi":  # execute-api:ManageConnections on the connection, by method
        return [("execute-api:ManageConnections", f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{PSEUDO['WebsocketAPI']}/"
                 f"api/{_CONNECTION_METHODS[operation]}/@connections/{params['ConnectionId']}")]
    if service == "secretsmanager":
        return [(f"secretsmanager:{operation}", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:"
                                                f"{params['SecretId']}-AbC123")]
    return [(f"{service}:{operation}", "*")]


def _resolve(value: Any, resources: dict[str, Any]) -> str:
    def arn_of(lid: str) -> str:
        props = resources[lid]["Properties"]
        return _table(props["TableName"]) if "TableName" in props else _queue(props["QueueName"])

    if isinstance(value, str):
        return value
    if "Fn::GetAtt" in value:
        return arn_of(value["Fn::GetAtt"][0])
    text = value["Fn::Sub"]
    text = re.sub(r"\$\{(\w+)\.Arn\}", lambda m: arn_of(m.group(1)), text)
    return re.sub(r"\$\{(AWS::\w+|WebsocketAPI)\}", lambda m: PSEUDO[m.group(1)], text)


def allowed(policy: dict[str, Any], resources: dict[str, Any], action: str, arn: str) -> bool:
    for statement in policy["Statement"]:
        if statement["Effect"] == "Allow" and action in statement["Action"]:
            if any(fnmatch.fnmatchcase(arn, _resolve(r, resources)) for r in statement["Resource"]):
                return True
    return False


# --- the scenario ---------------------------------------------------------------------------------

@contextlib.contextmanager
def clock_ahead(monkeypatch: pytest.MonkeyPatch, seconds: int) -> Iterator[None]:
    real = clock.now_ms
    monkeypatch.setattr(clock, "now_ms", lambda: real() + seconds * 1000)
    try:
        yield
    finally:
        monkeypatch.setattr(clock, "now_ms", real)


def run_scenario(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalice.test import Client

    from chalicelib.routes import callback_function, reconcile, rewards
    from chalicelib.routes import tp_apps as callbacks
    from chalicelib.secrets import put_tp_app
    from rewardgate_ops.lambda_events import scheduled_event
    from rewardgate_ops.sample_events import sample_event
    from tests.conftest import ROOT

    # Setup that operators do, not the functions: keys, credentials, clean queues.
    install_signing_key()
    tp_app = new_credentials()
    put_tp_app(tp_app)
    reset_process_state()
    purge_credits()
    drain_queue(EVENTS.name)
    client = chalice_client()
    two_hours_ago = datetime.fromtimestamp(time.time() - 7200, tz=UTC).strftime("%Y-%m-%dT%H")

    with recorder.acting("api_handler"):
        campaign = make_campaign(client)
        status, first = call(client, "POST", "/v1/grants", campaign.grant_body("u1", rain_id="r1"))
        assert status == 202, first
        status, batch = call(client, "POST", "/v1/grants/batch",
                             {"grants": [campaign.grant_body("u2", rain_id="r1"), campaign.grant_body("u1", "r2")]})
        assert status == 200, batch
    with recorder.acting("callback_handler"):
        # in AWS the callback routes run in their own function, on their own app object
        callback_client = Client(callback_function.app, stage_name="local", project_dir=str(ROOT))
        app_id = "tt" + tp_app.tp_app_id[-8:]
        event = sample_event("AUTHORIZED", AppId=app_id, TpAppId=tp_app.tp_app_id)
        response = post(callback_client, tp_app.tp_app_id, platform_body(tp_app, event), channel="auth")
        assert response.status_code == 200, response.body
    with clock_ahead(monkeypatch, 3600), recorder.acting("sweep_received_events"):
        swept = callbacks.sweep_received_events(scheduled_event("sweep_received_events"), None)
    with recorder.acting("apply_callback_events"):
        EventsQueue(callbacks.apply_callback_events).drain()
    with recorder.acting("credit_worker"):
        delivered = deliver_credits()
    with recorder.acting("api_handler"):
        wallet = f"/v1/wallets/u1?activity_id={campaign.activity_id}"
        for path in (wallet, wallet.replace("/u1?", "/u1/flow?"), "/v1/keys/reward-token",
                     f"/v1/activities/{campaign.activity_id}/totals", f"/v1/admin/activities/{campaign.activity_id}",
                     f"/v1/activities/{campaign.activity_id}/scenes/{campaign.scene_id}/stock",
                     "/v1/admin/switches", f"/v1/tp-apps/{tp_app.tp_app_id}/events",
                     f"/v1/tp-apps/{tp_app.tp_app_id}/apps/{app_id}"):
            status, body = call(client, "GET", path)
            assert status == 200, (path, body)
        status, body = call(client, "POST", "/v1/wallets/u1/withdrawals", withdrawal_body(campaign, 50))
        assert status == 200, body
        # A pending reward forced in by the withdrawal (its token presented), then a payout that times out.
        status, third = call(client, "POST", "/v1/grants", campaign.grant_body("u2", rain_id="r3"))
        assert status == 202, third
        with payout_mode("timeout"):
            status, body = call(client, "POST", "/v1/wallets/u2/withdrawals",
                                withdrawal_body(campaign, 150, tokens_=[third["token"]]))
        assert status == 202, body
        status, body = call(client, "POST", "/v1/admin/reconciliations", {"hour": two_hours_ago})
        assert status in (200, 202), body
        status, body = call(client, "GET", f"/v1/admin/reconciliations/{two_hours_ago}")
        assert status == 200, body
    with clock_ahead(monkeypatch, 120), recorder.acting("rewards_sweeper"):
        swept_rewards = rewards.rewards_sweeper(scheduled_event("rewards_sweeper"), None)
    with recorder.acting("reconciler"):
        reconcile.reconciler(scheduled_event("reconciler"), None)
    print(f"scenario: events swept={swept}, credits delivered={delivered.succeeded}/{delivered.received}, "
          f"rewards sweep={swept_rewards}")
    assert delivered.succeeded >= 3 and delivered.failed == 0
    assert swept_rewards["settled_withdrawals"] >= 1


def denied_calls(recorder: Recorder, functions: dict[str, str], unexercised_shown: str = "") -> list[str]:
    """Every recorded call of `functions` (name -> logical id) that its role in the merged template does not
    allow; prints, per function, its calls, the denied ones and the grants no call used (those whose ARN holds
    `unexercised_shown` by name)."""
    resources = merge_template(settings().stage)["Resources"]
    policies = {name: resources[f"{lid}Role"]["Properties"]["Policies"][0]["PolicyDocument"]
                for name, lid in functions.items()}
    denied, used = [], defaultdict(set)
    for function, calls in recorder.calls.items():
        for service, operation, params in calls:
            for action, arn in authorizations(service, operation, params):
                used[function].add((action, arn))
                if not allowed(policies[function], resources, action, arn):
                    denied.append(f"{function}: {action} on {arn}")
    for function in policies:
        granted = sorted({(a, _resolve(r, resources)) for s in policies[function]["Statement"]
                          for a in s["Action"] for r in s["Resource"]})
        unused = [g for g in granted if not any(a == g[0] and fnmatch.fnmatchcase(arn, g[1])
                                                 for a, arn in used[function])]
        print(f"{function}: calls={len(recorder.calls[function])} distinct={len(used[function])} "
              f"denied={sum(d.startswith(function + ':') for d in denied)} granted_unexercised={len(unused)}")
        for action, arn in unused:
            if unexercised_shown in arn:
                print(f"    not exercised: {action} {arn.rsplit(':', 1)[-1]}")
    return sorted(set(denied))


def test_iam__every_call_each_function_makes__allowed_by_its_role(recorder, monkeypatch):
    # GIVEN the policies the deploy template gives each function, for the stage the tests run on
    functions = {"api_handler": "APIHandler", "callback_handler": "CallbackHandler",
                 "apply_callback_events": "ApplyCallbackEvents", "sweep_received_events": "SweepReceivedEvents",
                 "credit_worker": "CreditWorker", "rewards_sweeper": "RewardsSweeper", "reconciler": "Reconciler"}
    # WHEN every function runs through its real handler
    run_scenario(recorder, monkeypatch)
    # THEN each of its calls is allowed by its own role
    assert set(recorder.calls) == set(functions), "the scenario must run every function"
    assert denied_calls(recorder, functions) == []
