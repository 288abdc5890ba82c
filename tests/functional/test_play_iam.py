"""Every AWS call interactive play makes is allowed by the IAM role of the function it runs in.

The same method as `test_deploy_iam_coverage.py` (whose recorder and IAM evaluation this reuses), on
play's paths: the `/v1` and `/v2/app` routes in `api_handler`, the `play_sweeper` and `play_bills`
schedules, and the reconciler's play pass.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from botocore.client import BaseClient

from tests.functional.test_deploy_iam_coverage import Recorder, clock_ahead, denied_calls
from tests.play_support import (
    danmaku,
    gift,
    install_play_key,
    make_anchor,
    new_id,
    open_live,
    post_events,
)
from tests.rewards_support import call, chalice_client, install_signing_key, purge_credits

FUNCTIONS = {"api_handler": "APIHandler", "play_sweeper": "PlaySweeper", "play_bills": "PlayBills",
             "reconciler": "Reconciler"}


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    """Every botocore call made while a function is `acting` (as in test_deploy_iam_coverage)."""
    found = Recorder()
    original = BaseClient._make_api_call

    def recording(client, operation, params):
        if found.function is not None:
            found.calls[found.function].append((client.meta.service_model.service_name, operation, params))
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return found


def run_scenario(recorder, monkeypatch) -> None:
    from chalicelib.play import apps, keys
    from chalicelib.routes import play, reconcile
    from rewardgate_ops.lambda_events import scheduled_event

    # Operators' setup (CLI, not a function): keys, an app's access key.
    install_signing_key()
    install_play_key()
    purge_credits()
    client = chalice_client()
    app_id = new_id()
    key = keys.new_app_key(app_id)
    last_hour = datetime.fromtimestamp(time.time() - 7200, tz=UTC).strftime("%Y-%m-%dT%H")

    with recorder.acting("api_handler"):
        status, _ = call(client, "PUT", f"/v1/admin/play-apps/{app_id}",
                         {"name": "iam", "share_bp": 5000, "interactive_gift_ids": [31039]})
        assert status == 200
    keys.put_app_key(key)
    apps.set_access_key_id(app_id, key.access_key_id)
    from tests.play_support import PlayApp

    app = PlayApp(app_id, key)
    with recorder.acting("api_handler"):
        anchor = make_anchor(client)
        assert call(client, "POST", f"/v1/play/anchors/{anchor.anchor_id}/code/refresh")[0] == 200
        anchor = make_anchor(client)
        ol = open_live(client, app)
        game_id = ol.start(anchor.code)["data"]["game_info"]["game_id"]
        assert ol.heartbeat(game_id)["code"] == 0
        assert ol.batch_heartbeat([game_id])["code"] == 0
        assert post_events(client, anchor.room_id, [gift(), danmaku()])[0] == 200
        assert ol.events(game_id)["code"] == 0
        for path in (f"/v1/admin/play-apps/{app_id}", "/v1/admin/play-apps",
                     f"/v1/play-apps/{app_id}/settlement?day=2030-01-01"):
            assert call(client, "GET", path)[0] == 200, path
        assert call(client, "POST", "/v1/admin/reconciliations", {"hour": last_hour})[0] in (200, 202)
        other = make_anchor(client)
        ended = ol.start(other.code)["data"]["game_info"]["game_id"]
        assert ol.end(ended)["code"] == 0
    with clock_ahead(monkeypatch, 120), recorder.acting("play_sweeper"):
        assert play.play_sweeper(scheduled_event("play_sweeper"), None)["ended"] >= 1
    with clock_ahead(monkeypatch, 2 * 86_400), recorder.acting("play_bills"):
        report = play.play_bills(scheduled_event("play_bills"), None)
        assert report["credited"], report
    with recorder.acting("reconciler"):
        reconcile.reconciler(scheduled_event("reconciler"), None)


def test_iam__every_call_of_play__allowed_by_its_functions_role(recorder, monkeypatch):
    run_scenario(recorder, monkeypatch)
    assert set(recorder.calls) == set(FUNCTIONS)
    assert denied_calls(recorder, FUNCTIONS, unexercised_shown="play") == []
