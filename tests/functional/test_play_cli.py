"""The interactive-play commands: play-app add/rotate-key/unban/list, play code, simulate live-event."""

from __future__ import annotations

import json
import stat

import pytest
from click.testing import CliRunner

from chalicelib.play import apps, security
from chalicelib.play.config import play_settings
from rewardgate_ops.cli import rewardgate
from rewardgate_ops.local_secrets import PLAY_APPS_FILE, PLAY_KEY_FILE, ensure_play_key, remember_play_app
from tests.functional.test_cli_operator import stored_secret
from tests.play_support import (
    PlayApp,
    install_play_key,
    make_anchor,
    make_app,
    new_id,
    open_live,
    start_game,
)


@pytest.fixture(scope="module", autouse=True)
def _play_key(aws_stack):
    install_play_key()


def invoke(tmp_path, *args: str):
    # COLUMNS keeps rich tables on one line each
    return CliRunner(env={"COLUMNS": "240"}).invoke(rewardgate, ["--state-dir", str(tmp_path), *args])


def test_play_app_add__json__prints_the_key_once_stored_in_secrets_manager_and_it_signs(tmp_path, client):
    app_id = new_id()
    result = invoke(tmp_path, "play-app", "add", "--app-id", str(app_id), "--name", "Duel", "--share-bp", "5000",
                    "--gift-ids", "31039,31040", "--output", "json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert set(printed) == {"app_id", "access_key_id", "access_key_secret"} and printed["app_id"] == app_id
    assert stored_secret(play_settings().app_secret(app_id)) == printed
    # AND the app is configured, its table item naming the key id but never holding the secret
    app = apps.get_app_uncached(app_id)
    assert (app.interactive_gift_ids, app.latest_ratio.share_bp, app.access_key_id) == (
        (31039, 31040), 5000, printed["access_key_id"])
    assert printed["access_key_secret"] not in json.dumps(app.to_doc())
    # AND the key signs open-live calls (outside the local stack nothing is written to the state folder)
    from chalicelib.play.keys import AppKey

    key = AppKey(app_id, printed["access_key_id"], printed["access_key_secret"])
    assert open_live(client, PlayApp(app_id, key)).start(make_anchor(client).code)["code"] == 0
    assert not (tmp_path / PLAY_APPS_FILE).exists()


def test_play_app_add__existing_id__one_line_error_key_unchanged(tmp_path):
    app_id = new_id()
    base = ["play-app", "add", "--app-id", str(app_id), "--name", "a", "--share-bp", "1"]
    assert invoke(tmp_path, *base).exit_code == 0
    before = stored_secret(play_settings().app_secret(app_id))
    again = invoke(tmp_path, *base)
    assert again.exit_code == 1
    assert again.output.strip().splitlines()[-1] == f"Error: play_app_exists: play app {app_id} already exists"
    assert stored_secret(play_settings().app_secret(app_id)) == before


@pytest.mark.parametrize(("args", "message"), [
    (["--share-bp", "10001"], "10001 is not in the range 0<=x<=10000"),
    (["--gift-ids", "1,x"], "must be positive gift ids"),
    (["--app-id", "0"], "0 is not in the range"),
])
def test_play_app_add__bad_option__usage_error_nothing_stored(tmp_path, args, message):
    app_id = new_id()
    base = {"--app-id": str(app_id), "--name": "a", "--share-bp": "1"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    result = invoke(tmp_path, "play-app", "add", *[x for kv in base.items() for x in kv])
    assert result.exit_code == 2 and message in result.output
    assert stored_secret(play_settings().app_secret(app_id)) is None


def test_rotate_key__old_key_refused_new_key_works(tmp_path, client):
    app = make_app(client)
    anchor = make_anchor(client)
    result = invoke(tmp_path, "play-app", "rotate-key", "--app-id", str(app.app_id), "--output", "json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    from chalicelib.play.keys import AppKey

    new = PlayApp(app.app_id, AppKey(app.app_id, printed["access_key_id"], printed["access_key_secret"]))
    assert open_live(client, app).start(anchor.code)["code"] == 4002
    assert open_live(client, new).start(anchor.code)["code"] == 0


def test_rotate_key__unknown_app__error(tmp_path):
    result = invoke(tmp_path, "play-app", "rotate-key", "--app-id", str(new_id()))
    assert result.exit_code == 1 and "play_app_not_found" in result.output


def test_unban_and_list__banned_app__listed_banned_then_served(tmp_path, client):
    app = make_app(client)
    security.offend(apps.get_app(app.app_id), 10**13)  # banned until far in the future
    listed = json.loads(invoke(tmp_path, "play-app", "list", "--output", "json").stdout)
    row = next(r for r in listed if r["app_id"] == app.app_id)
    assert row["banned"] is True and row["offences"] == 1
    result = invoke(tmp_path, "play-app", "unban", "--app-id", str(app.app_id), "--output", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)["offences_forgotten"] == 1
    assert security.ban_state(app.app_id).offences == 0
    table = invoke(tmp_path, "play-app", "list")
    assert table.exit_code == 0
    row = next(line for line in table.stdout.splitlines() if str(app.app_id) in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")][:3] == [str(app.app_id), f"play {app.app_id}", "5000"]
    assert "BANNED" not in row


def test_play_code__issue_show_refresh(tmp_path):
    anchor_id, room_id = new_id(), new_id()
    first = json.loads(invoke(tmp_path, "play", "code", "--anchor-id", str(anchor_id), "--room-id", str(room_id),
                              "--uname", "Streamer", "--output", "json").stdout)
    shown = json.loads(invoke(tmp_path, "play", "code", "--anchor-id", str(anchor_id), "--output", "json").stdout)
    fresh = json.loads(invoke(tmp_path, "play", "code", "--anchor-id", str(anchor_id), "--refresh",
                              "--output", "json").stdout)
    assert first == shown and first["room_id"] == room_id
    assert fresh["code"] != first["code"] and fresh["generation"] == 2
    missing = invoke(tmp_path, "play", "code", "--anchor-id", str(new_id()))
    assert missing.exit_code == 1 and "anchor_not_found" in missing.output


def test_simulate_live_event__gift_for_a_sandbox_game__appended_settled_and_pulled(tmp_path, client, api_url):
    app, anchor = make_app(client, sandbox=True), make_anchor(client)
    game_id = start_game(client, app, anchor)
    result = invoke(tmp_path, "simulate", "live-event", "--room-id", str(anchor.room_id),
                    "--cmd", "LIVE_OPEN_PLATFORM_SEND_GIFT", "--gift-id", "31039", "--price", "1000", "--num", "2",
                    "--times", "2", "--msg-id", "dbg-1", "--url", api_url, "--output", "json")
    assert result.exit_code == 0, result.output
    sent = json.loads(result.stdout)["sent"]
    assert [(s["status"], s["seq"], s["settled"]) for s in sent] == [("appended", 1, True), ("duplicate", 1, False)]
    (event,) = open_live(client, app).all_events(game_id)
    assert event["cmd"] == "LIVE_OPEN_PLATFORM_SEND_GIFT"
    assert (event["data"]["gift_id"], event["data"]["price"], event["data"]["gift_num"], event["data"]["paid"]) == (
        31039, 1000, 2, True)
    assert event["data"]["room_id"] == anchor.room_id and "combo_info" in event["data"]


@pytest.mark.parametrize("cmd", ["dm", "guard", "super-chat", "super-chat-del", "like"])
def test_simulate_live_event__every_other_cmd__a_valid_message(tmp_path, client, api_url, cmd):
    app, anchor = make_app(client, sandbox=True), make_anchor(client)
    start_game(client, app, anchor)
    result = invoke(tmp_path, "simulate", "live-event", "--room-id", str(anchor.room_id), "--cmd", cmd,
                    "--count", "2", "--url", api_url)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("appended") == 2


def test_simulate_live_event__live_apps_game__refused_exit_1_with_the_reason(tmp_path, client, api_url):
    app, anchor = make_app(client), make_anchor(client)
    start_game(client, app, anchor)
    result = invoke(tmp_path, "simulate", "live-event", "--room-id", str(anchor.room_id), "--cmd", "dm",
                    "--url", api_url)
    assert result.exit_code == 1
    assert "test events go to sandbox apps' games only" in result.output


def test_local_secrets__play_key_generated_once_owner_only__apps_remembered(tmp_path):
    value, created = ensure_play_key(tmp_path)
    again, created_again = ensure_play_key(tmp_path)
    assert created and not created_again and value == again
    assert stat.S_IMODE((tmp_path / PLAY_KEY_FILE).stat().st_mode) == 0o600
    path = remember_play_app(tmp_path, 7, {"app_id": 7, "access_key_id": "k", "access_key_secret": "s"})
    assert json.loads(path.read_text()) == {"7": {"app_id": 7, "access_key_id": "k", "access_key_secret": "s"}}


def test_play_app_add__dry_run__shows_the_app_and_stores_nothing(tmp_path):
    app_id = new_id()
    result = invoke(tmp_path, "play-app", "add", "--app-id", str(app_id), "--name", "Duel", "--share-bp", "5000",
                    "--gift-ids", "31039", "--dry-run", "--output", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"dry_run": True, "app_id": app_id, "name": "Duel", "share_bp": 5000,
                                         "interactive_gift_ids": [31039], "sandbox": False}
    assert apps.find_app(app_id) is None and stored_secret(play_settings().app_secret(app_id)) is None

