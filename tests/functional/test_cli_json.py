"""`--output json` on every command: each prints one JSON document on stdout with the facts asked for.

The walk over the command tree fails when a command has no `--output` option or is not exercised here."""

from __future__ import annotations

import json

import boto3
import click
import pytest
from click.testing import CliRunner

from chalicelib.settings import settings
from rewardgate_ops.cli import rewardgate
from rewardgate_ops.target import ServiceRecord, StackInfo, stack_file
from tests.callback_factory import new_aes_key
from tests.conftest import uid
from tests.play_support import Anchor, PlayApp
from tests.rewards_support import call, deliver_credits, make_campaign

# `local up` serves until interrupted; its JSON form (the stack file) is covered by its own code path
NOT_RUN_HERE = {"local up"}


@pytest.fixture(autouse=True)
def no_metric_lines_from_servers_in_this_process(monkeypatch):
    # CliRunner captures this process's stdout, and the local WebSocket stack below serves (and its workers run)
    # in threads of this same process: their EMF lines, printed whenever a thread finishes work, would land in
    # the captured output of whichever command runs then. Deployed, they are other processes' log streams.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")


def leaf_commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found |= leaf_commands(command, path + " ")
        else:
            found[path] = command
    return found


def run(tmp_path, *args: str, stdin: str | None = None, exit_codes: tuple[int, ...] = (0,)) -> dict | list:
    result = CliRunner().invoke(rewardgate, ["--state-dir", str(tmp_path), *args, "--output", "json"], input=stdin)
    assert result.exit_code in exit_codes, result.output
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


def test_cli_json__every_command__one_json_document_with_its_facts(tmp_path, client, world, api_url, aws_stack):
    campaign, granted = world
    act, scene = campaign.activity_id, campaign.scene_id
    tp_app_id = uid("tt")
    key_file, token_file = tmp_path / "key", tmp_path / "token"
    key_file.write_text(new_aes_key())
    token_file.write_text("jsonTok3n")

    def check(command: str, *args: str, stdin: str | None = None, exit_codes: tuple[int, ...] = (0,)) -> dict | list:
        EXERCISED.add(command)
        return run(tmp_path, *command.split(), *args, stdin=stdin, exit_codes=exit_codes)

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
    switch = f"grants:{other}:s1"
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
    play_facts(check, client, api_url)
    audit = check("audit", "--since", "10m")
    assert {"tp_app.put", "activity.put", "scene.put", "switch.put", "withdrawal.create", "events.replay",
            "play_app.put", "play_app.rotate_key", "play_app.unban", "play.init_key", "play.close_bills",
            "anchor_code.refresh"} <= {e["action"] for e in audit}
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


def play_facts(check, client, api_url) -> None:
    """The interactive-play commands, each with the facts it was asked for."""
    from chalicelib.play import keys
    from chalicelib.play.config import play_settings
    from chalicelib.secrets import get_secret_json, put_secret_json
    from tests.play_support import install_play_key, new_id, open_live, start_game

    install_play_key()
    master = play_settings().key_secret
    saved = get_secret_json(master, max_age=0)
    boto3.client("secretsmanager").delete_secret(SecretId=master, ForceDeleteWithoutRecovery=True)
    try:
        assert check("play init-key") == {"secret": master, "created": True}
    finally:
        put_secret_json(master, saved)
        keys.reset()
    app_id = new_id()
    added = check("play-app add", "--app-id", str(app_id), "--name", "json play", "--share-bp", "5000",
                  "--gift-ids", "31039", "--sandbox")
    assert added["app_id"] == app_id
    assert added["access_key_id"].startswith(f"rgak-{app_id}-") and len(added["access_key_secret"]) >= 32
    rotated = check("play-app rotate-key", "--app-id", str(app_id))
    assert rotated["app_id"] == app_id and rotated["access_key_id"] != added["access_key_id"]
    listed = next(a for a in check("play-app list") if a["app_id"] == app_id)
    assert (listed["share_bp"], listed["sandbox"], listed["banned"], listed["access_key_id"]) == (
        5000, True, False, rotated["access_key_id"])
    assert check("play-app unban", "--app-id", str(app_id)) == {
        "app_id": app_id, "was_banned": False, "offences_forgotten": 0, "banned_until_ms": 0}
    anchor_id, room_id = new_id(), new_id()
    code = check("play code", "--anchor-id", str(anchor_id), "--room-id", str(room_id))
    assert (code["anchor_id"], code["room_id"], code["generation"]) == (anchor_id, room_id, 1)
    refreshed = check("play code", "--anchor-id", str(anchor_id), "--refresh")
    assert refreshed["generation"] == 2 and refreshed["code"] != code["code"]
    app = PlayApp(app_id, keys.AppKey(app_id, rotated["access_key_id"], rotated["access_key_secret"]))
    game_id = start_game(client, app, Anchor(anchor_id, room_id, refreshed["code"]))
    sent = check("simulate live-event", "--room-id", str(room_id), "--cmd", "gift", "--price", "2000",
                 "--url", api_url)
    assert [(r["status"], r["game_id"], r["seq"], r["settled"]) for r in sent["sent"]] == [
        ("appended", game_id, 1, True)]
    assert open_live(client, app).all_events(game_id)[0]["data"]["price"] == 2000
    from chalicelib import clock
    from chalicelib.play import settlement

    today = settlement.day_of(clock.now_ms())
    assert check("play settlement", "--app-id", str(app_id), "--day", today) | {"closes_at_ms": 0} == {
        "app_id": app_id, "day": today, "gifts": 1, "revenue": 2000, "developer_share": 1000, "closed": False,
        "ratio_versions": [1], "closes_at_ms": 0, "cumulative_share": None, "credit": None}
    # the play's push, followed from the command line: the gift above, then (resumed after it) a danmaku
    from tests.live_support import local_websocket_stack

    with local_websocket_stack() as live:
        started = open_live(client, app).start(refreshed["code"])["data"]["websocket_info"]
        assert started["wss_link"] == [live["ws"]]
        watched = check("play watch", "--auth-body", started["auth_body"], "--url", live["ws"], "--count", "1",
                        "--seconds", "30")
        assert [(e["seq"], e["cmd"], e["data"]["price"]) for e in watched["events"]] == [
            (1, "LIVE_OPEN_PLATFORM_SEND_GIFT", 2000)]
        assert check("simulate live-event", "--room-id", str(room_id), "--cmd", "dm", "--url", live["api"])
        resumed = check("play watch", "--auth-body", started["auth_body"], "--url", live["ws"], "--resume-after",
                        "1", "--count", "1", "--seconds", "30")
        assert [(e["seq"], e["cmd"]) for e in resumed["events"]] == [(2, "LIVE_OPEN_PLATFORM_DM")]
        assert resumed["last_seq"] == 2 and resumed["errors"] == []
    # (a day held by another suite's seeded reconciliation fault exits 3, with the same document)
    bills = check("play close-bills", exit_codes=(0, 3))
    assert set(bills) == {"closed", "held", "credited", "credit_failed"}
    assert not [day for day in bills["closed"] + bills["held"] if day.startswith(f"{app_id}/")]
