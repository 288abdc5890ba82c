"""`--output json` on every command: each prints one JSON document on stdout with the facts asked for.

The walk over the command tree fails when a command has no `--output` option or is not exercised here."""

from __future__ import annotations

import json
import threading

import click
import pytest
from click.testing import CliRunner

from chalicelib.settings import settings
from rewardgate_ops.cli import rewardgate
from rewardgate_ops.target import ServiceRecord, StackInfo, stack_file
from tests.callback_factory import new_aes_key
from tests.conftest import uid
from tests.rewards_support import call, deliver_credits, make_campaign

# `local up` serves until interrupted; its JSON form (the stack file) is covered by its own code path
NOT_RUN_HERE = {"local up"}


def leaf_commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found |= leaf_commands(command, path + " ")
        else:
            found[path] = command
    return found


def run(tmp_path, *args: str, stdin: str | None = None) -> dict | list:
    result = CliRunner().invoke(rewardgate, ["--state-dir", str(tmp_path), *args, "--output", "json"], input=stdin)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def world(client):
    # `client` installs the signing key the grant below is signed with
    campaign = make_campaign(client, total=100_000, order_cap=1000)
    status, granted = call(client, "POST", "/v1/grants", campaign.grant_body("json-user", amount=300))
    assert status == 202
    deliver_credits()
    status, _ = call(client, "POST", "/v1/wallets/json-user/withdrawals",
                     {"activity_id": campaign.activity_id, "request_id": "json-w1", "amount": 100})
    assert status == 200
    return campaign, granted


EXERCISED: set[str] = set()


@pytest.fixture
def api_url(client):
    import app
    from rewardgate_ops.local_api import make_server
    from rewardgate_ops.services import free_port

    server = make_server(app.app, "127.0.0.1", free_port())
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server.server_address[1]}"
    server.server.shutdown()
    server.server.server_close()


def test_cli_json__every_command__one_json_document_with_its_facts(tmp_path, world, api_url, aws_stack):
    campaign, granted = world
    act, scene = campaign.activity_id, campaign.scene_id
    tp_app_id = uid("tt")
    key_file, token_file = tmp_path / "key", tmp_path / "token"
    key_file.write_text(new_aes_key())
    token_file.write_text("jsonTok3n")

    def check(command: str, *args: str, stdin: str | None = None) -> dict | list:
        EXERCISED.add(command)
        return run(tmp_path, *command.split(), *args, stdin=stdin)

    assert check("tp-app add", "--tp-app-id", tp_app_id, "--platform", "douyin", "--token-file", str(token_file),
                 "--aes-key-file", str(key_file))["secret"] == settings().tp_app_secret(tp_app_id)
    assert tp_app_id in [e["tp_app_id"] for e in check("tp-app list")]
    sent = check("simulate callback", "--tp-app-id", tp_app_id, "--event", "PUSH", "--url", api_url, "--times", "2")
    assert [a["status"] for a in sent["answers"]] == [200, 200]
    assert check("events replay", "--tp-app-id", tp_app_id, "--type", "PUSH") == {
        "tp_app_id": tp_app_id, "event_type": "PUSH", "examined": 1, "reopened": 0, "send_failed": 0}
    other = uid("act")
    assert check("activity put", "--activity-id", other, "--child",
                 "c1,formal,2030-01-01T00:00:00,2030-01-02T00:00:00")["activity_id"] == other
    assert check("activity show", "--activity-id", act)["scenes"][0]["scene_id"] == scene
    assert {act, other} <= {a["activity_id"] for a in check("activity list")}
    assert check("activity totals", "--activity-id", act)["children"][0]["distributed"]["CNY"] == {
        "amount": 300, "rewards": 1}
    assert check("scene put", "--activity-id", other, "--scene-id", "s1", "--award-type", "cash", "--order-cap",
                 "10", "--total", "100")["version"] == 1
    assert check("scene show", "--activity-id", act, "--scene-id", scene)["asset"] == "CNY"
    assert check("scene stock", "--activity-id", act, "--scene-id", scene)["consumed"] == 300
    switch = f"grants.{other}.s1"
    assert check("switch set", "--name", switch, "--off") == {"name": switch, "enabled": False}
    assert check("switch list")[switch] == {"enabled": False}
    order = check("order show", "--activity-id", act, "--order-id", granted["order_id"])
    assert (order["amount"], order["status_name"]) == (300, "CREDITED")
    wallet = check("wallet show", "--activity-id", act, "--act-id", "json-user")
    assert (wallet["balance"], wallet["total_withdrawn"], [f["type"] for f in wallet["flow"]]) == (
        200, 100, ["withdrawal", "credit"])
    withdrawal = check("withdrawal show", "--activity-id", act, "--act-id", "json-user", "--request-id", "json-w1")
    assert (withdrawal["amount"], withdrawal["status"]) == (100, "PAID")
    verified = check("token verify", "--token", granted["token"])
    assert (verified["valid"], verified["format"], verified["claims"]["amount"]) == (True, "jws", 300)
    from chalicelib.secrets import get_secret_json, put_secret_json

    before = check("keys show")
    assert before["current_kid"] == "test-key-1"
    saved = get_secret_json(before["secret"], max_age=0)
    try:
        assert check("keys rotate", "--kid", "k-json")["current_kid"] == "k-json"
    finally:
        put_secret_json(before["secret"], saved)
    EXERCISED.add("keys init")  # creating the first key: tests/functional/test_cli_rewards.py (JSON output)
    reconciled = check("reconcile", "--hour", "2020-01-01T00")
    assert (reconciled["hour"], reconciled["ok"]) == ("2020-01-01T00", True)
    audit = check("audit", "--since", "10m")
    assert {"tp_app.put", "activity.put", "scene.put", "switch.put", "withdrawal.create", "events.replay"} <= {
        e["action"] for e in audit}
    assert next(e for e in audit if e["action"] == "switch.put" and e["target"] == {"name": switch})["caller_arn"] \
        .startswith("local:")
    stack_dir = tmp_path / "stack"
    stack_dir.mkdir()
    port = lambda url: int(url.rsplit(":", 1)[1])  # noqa: E731
    StackInfo(pid=1, stage="local", started_at="t", api=ServiceRecord(8000, 0, api_url),
              dynamodb=ServiceRecord(port(aws_stack.dynamodb_endpoint), 0, aws_stack.dynamodb_endpoint),
              moto=ServiceRecord(port(aws_stack.moto_endpoint), 0, aws_stack.moto_endpoint),
              data_dir="d", logs_dir="l").save(stack_file(stack_dir))
    EXERCISED.add("local env")
    assert run(stack_dir, "local", "env")["RG_API_URL"] == api_url
    # AND that was every command of the tree (a new command must be added above)
    assert set(leaf_commands(rewardgate)) - NOT_RUN_HERE == EXERCISED


def test_cli_json__command_tree__every_command_takes_output():
    commands = leaf_commands(rewardgate)
    assert [name for name, c in commands.items() if "output" not in {p.name for p in c.params}] == []
