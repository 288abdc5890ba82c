"""Operator commands for rewards against DynamoDB Local and moto: activity, scene, switch, token, keys, reconcile."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from chalicelib import clock
from chalicelib.rewards import config_store, ids, tokens
from chalicelib.rewards.tables import WalletItem
from chalicelib.secrets import get_secret_json, put_secret_json
from chalicelib.settings import settings
from rewardgate_ops.cli import rewardgate
from tests.conftest import uid
from tests.rewards_support import (
    call,
    chalice_client,
    deliver_credits,
    install_signing_key,
    make_campaign,
    purge_credits,
)

HOUR_MS = 3600 * 1000
JAN_1_2030 = 1893456000000
DAY_MS = 86_400_000


def invoke(tmp_path, *args: str, output: str = "json"):
    # RG_OUTPUT is the default of every command's --output; COLUMNS keeps rich tables on one line each
    return CliRunner(env={"RG_OUTPUT": output, "COLUMNS": "240"}).invoke(
        rewardgate, ["--state-dir", str(tmp_path), *args])


def table_rows(output: str, first_cell: str) -> list[list[str]]:
    """The cells of every rich table row whose first cell is `first_cell`."""
    rows = [[cell.strip() for cell in line.strip().strip("│").split("│")] for line in output.splitlines()
            if line.strip().startswith("│")]
    return [row for row in rows if row[0] == first_cell]


def json_out(result) -> dict:
    return json.loads(result.stdout)


def test_activity_and_scene_put__from_options__stored_as_the_admin_api_stores_them(tmp_path):
    # GIVEN an activity with two consecutive children (ISO times, UTC by default, and epoch ms)
    activity_id, scene_id = uid("act"), uid("scene")
    result = invoke(tmp_path, "activity", "put", "--activity-id", activity_id, "--name", "spring rain",
                    "--child", "rehearsal,gray_rehearsal,2030-01-01T00:00:00,2030-01-02T00:00:00",
                    "--child", f"formal,formal,2030-01-02T00:00:00+00:00,{JAN_1_2030 + 8 * DAY_MS}")
    assert result.exit_code == 0, result.output
    # WHEN a scene is put
    result = invoke(tmp_path, "scene", "put", "--activity-id", activity_id, "--scene-id", scene_id,
                    "--award-type", "cash", "--order-cap", "888",
                    "--total", "10000", "--shard-count", "8")
    # THEN the stored configuration is exactly that
    assert result.exit_code == 0, result.output
    activity = config_store.get_activity_uncached(activity_id)
    assert [(c.sub_activity_id, c.purpose, c.starts_at_ms, c.ends_at_ms) for c in activity.children] == [
        ("rehearsal", "gray_rehearsal", JAN_1_2030, JAN_1_2030 + DAY_MS),
        ("formal", "formal", JAN_1_2030 + DAY_MS, JAN_1_2030 + 8 * DAY_MS),
    ]
    assert (json_out(result)["shard_count"], json_out(result)["version"]) == (8, 1)
    # AND each child's stock holds the whole total
    stock = invoke(tmp_path, "scene", "stock", "--activity-id", activity_id, "--scene-id", scene_id,
                   "--sub-activity-id", "formal")
    assert stock.exit_code == 0, stock.output
    assert {k: json_out(stock)[k] for k in ("total", "consumed", "remaining")} == {
        "total": 10000, "consumed": 0, "remaining": 10000}


def test_activity_put__overlapping_children__refused_with_the_error_code_and_nothing_stored(tmp_path):
    activity_id = uid("act")
    # WHEN two children overlap by a day
    result = invoke(tmp_path, "activity", "put", "--activity-id", activity_id,
                    "--child", "a,formal,2030-01-01T00:00:00,2030-01-03T00:00:00",
                    "--child", "b,formal,2030-01-02T00:00:00,2030-01-04T00:00:00")
    # THEN the command fails naming the problem, and nothing was stored
    assert result.exit_code == 1
    assert "overlapping_windows: child activities a and b overlap" in result.output
    assert invoke(tmp_path, "activity", "show", "--activity-id", activity_id).exit_code == 1


def test_activity_put__malformed_child__usage_error_naming_the_value(tmp_path):
    result = invoke(tmp_path, "activity", "put", "--activity-id", uid("act"),
                    "--child", "a,formal,yesterday,2030-01-03T00:00:00")
    assert result.exit_code == 2
    assert "'yesterday' is neither epoch milliseconds nor an ISO-8601 time" in result.output


def test_switch_set__grants_off_for_a_scene__grant_refused_until_back_on(tmp_path):
    # GIVEN a configured campaign
    install_signing_key()
    client = chalice_client()
    campaign = make_campaign(client)
    name = f"grants:{campaign.activity_id}:{campaign.scene_id}"
    # WHEN grants are switched off for its scene
    assert invoke(tmp_path, "switch", "set", "--name", name, "--off").exit_code == 0
    status, body = call(client, "POST", "/v1/grants", campaign.grant_body("u1"))
    # THEN grants are refused, and accepted again once switched back on
    assert (status, body["code"], body["switch"]) == (503, "switched_off", name)
    assert invoke(tmp_path, "switch", "set", "--name", name, "--on").exit_code == 0
    assert call(client, "POST", "/v1/grants", campaign.grant_body("u1"))[0] == 202


def test_switch_set__both_or_neither_value__usage_error(tmp_path):
    assert invoke(tmp_path, "switch", "set", "--name", "withdrawals").exit_code == 2
    assert invoke(tmp_path, "switch", "set", "--name", "withdrawals", "--on", "--percent", "5").exit_code == 2
    bad = invoke(tmp_path, "switch", "set", "--name", "withdrawal_gray_percent", "--percent", "101")
    assert bad.exit_code == 1 and "percent: must be between 0 and 100" in bad.output
    assert "Traceback" not in bad.output


@pytest.fixture
def granted_token():
    install_signing_key()
    client = chalice_client()
    campaign = make_campaign(client)
    status, body = call(client, "POST", "/v1/grants", campaign.grant_body("u7", amount=520))
    assert status == 202
    return body["token"], call(client, "GET", "/v1/keys/reward-token")[1]["keys"][0]["public_key"]


def test_token_verify__offline_with_the_public_key__valid_with_its_claims(tmp_path, granted_token):
    token, public_key = granted_token
    result = invoke(tmp_path, "token", "verify", "--token", token, "--public-key", public_key)
    assert result.exit_code == 0, result.output
    assert json_out(result)["valid"] is True
    assert (json_out(result)["claims"]["act_id"], json_out(result)["claims"]["amount"]) == ("u7", 520)


def test_token_verify__one_claim_altered__invalid_exit_1(tmp_path, granted_token):
    token, public_key = granted_token
    header, body, signature = token.split(".")
    claims = json.loads(tokens._unb64(body))
    forged = tokens._b64(json.dumps({**claims, "amount": 52000}, sort_keys=True, separators=(",", ":")).encode())
    result = invoke(tmp_path, "token", "verify", "--token", f"{header}.{forged}.{signature}", "--public-key",
                    public_key)
    assert result.exit_code == 1
    assert "invalid token: token signature does not verify" in result.output


def test_keys_init_then_rotate__old_tokens_still_verify_new_ones_use_the_new_key(tmp_path, granted_token):
    token, _ = granted_token
    name = settings().reward_token_secret
    before = get_secret_json(name, max_age=0)
    try:
        # WHEN a key exists, init refuses; rotate moves to a new key
        assert invoke(tmp_path, "keys", "init").exit_code == 1
        result = invoke(tmp_path, "keys", "rotate", "--kid", "k-next")
        assert result.exit_code == 0, result.output
        # THEN the new key signs, and the token signed before still verifies against the stage's keys
        assert json_out(result)["current_kid"] == "k-next"
        assert {k["kid"] for k in json_out(result)["keys"]} == {"k-next", before["kid"]}
        assert invoke(tmp_path, "token", "verify", "--token", token).exit_code == 0
    finally:
        put_secret_json(name, before)


def test_reconcile_command__hour_with_a_fault__prints_it_and_exits_3(tmp_path, monkeypatch):
    # GIVEN an hour of traffic at a fake hour, with one wallet off by one fen
    hour_start = clock.hour_start_ms("2034010100") + random.randrange(0, 24 * 3000) * HOUR_MS
    now = {"ms": hour_start + 10 * 60_000}
    monkeypatch.setattr(clock, "now_ms", lambda: now["ms"])
    install_signing_key()
    purge_credits()
    client = chalice_client()
    campaign = make_campaign(client, now_ms=now["ms"])
    for user in ("u1", "u2", "u3"):
        assert call(client, "POST", "/v1/grants", campaign.grant_body(user, amount=300))[0] == 202
    deliver_credits()
    wallet = ids.wallet_id(ids.child_ns(campaign.activity_id, "formal"), "u2", "CNY")
    WalletItem(wallet).update(actions=[WalletItem.balance.add(1)])
    now["ms"] = hour_start + HOUR_MS + 10 * 60_000
    hour = clock.hour_of(hour_start)
    # WHEN the operator reconciles the hour
    result = invoke(tmp_path, "reconcile", "--hour", f"{hour[:4]}-{hour[4:6]}-{hour[6:8]}T{hour[8:]}",
                    output="table")
    # THEN the table shows the child's figures and the fault, and the exit status says "discrepancies"
    assert result.exit_code == 3, result.output
    where = f"{campaign.activity_id}/formal"
    assert table_rows(result.stdout, where) == [[where, "3", "900", "3", "900", "0", "0", "0", "1", "NO"],
                                                [where, "wallet_mismatch", "1", wallet]], result.stdout
    # AND no metric line (EMF) was printed into the output (it used to break the progress bar)
    assert '"_aws"' not in result.output
    # AND --output json gives the same report as data
    as_json = invoke(tmp_path, "reconcile", "--hour", hour)
    [report] = [r for r in json.loads(as_json.stdout)["reports"] if r.get("activity_id") == campaign.activity_id]
    assert report["discrepancies"]["wallet_mismatch"]["count"] == 1 and report["ok"] is False


def test_keys_init__stage_without_a_key__creates_one_that_signs_and_verifies(tmp_path):
    import boto3

    from chalicelib import secrets

    name = settings().reward_token_secret
    before = get_secret_json(name, max_age=0)
    boto3.client("secretsmanager").delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    secrets.forget()
    try:
        # WHEN the deploy step creates the key
        result = invoke(tmp_path, "keys", "init", "--kid", "k-first")
        # THEN the secret holds a key that signs tokens verifying with the printed public key
        assert result.exit_code == 0, result.output
        assert json_out(result)["current_kid"] == "k-first"
        assert "private_key" not in result.stdout
        key = tokens.key_from_secret(get_secret_json(name, max_age=0))
        claims = {n: "x" for n in tokens.CLAIM_NAMES if n not in ("v", "kid")} | {"v": 1, "amount": 1}
        printed = tokens.load_public_key(json_out(result)["keys"][0]["public_key"])
        assert tokens.verify(tokens.sign(claims, key), {"k-first": printed})["amount"] == 1
    finally:
        put_secret_json(name, before)


def test_withdrawal__no_payout_provider_configured__503_before_anything_is_debited(monkeypatch):
    from chalicelib import process_state

    # GIVEN a credited wallet on a deployment without a payout provider (the prod default)
    install_signing_key()
    client = chalice_client()
    purge_credits()
    campaign = make_campaign(client)
    assert call(client, "POST", "/v1/grants", campaign.grant_body("u1", amount=500))[0] == 202
    deliver_credits()
    monkeypatch.setenv("RG_PAYOUT_PROVIDER", "none")
    process_state.reset()
    try:
        # WHEN the user withdraws
        status, body = call(client, "POST", "/v1/wallets/u1/withdrawals",
                            {"activity_id": campaign.activity_id, "request_id": "w1", "amount": 100})
        # THEN it is refused as unavailable and the balance is untouched
        assert (status, body["code"], body["provider"]) == (503, "payout_unavailable", "none")
        assert call(client, "GET", f"/v1/wallets/u1?activity_id={campaign.activity_id}")[1]["balance"] == 500
    finally:
        monkeypatch.delenv("RG_PAYOUT_PROVIDER")
        process_state.reset()
