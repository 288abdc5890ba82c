"""The API contract: the OpenAPI document against the app (both ways), problem+json on every refusal,
and a Hypothesis fuzz of every operation (bodies, query strings, path ids) on DynamoDB Local that finds no
5xx, no undocumented status, no answer outside its documented schema, and no write on a refusal."""

from __future__ import annotations

import json
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import botocore.client
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec

from tests.conftest import ROOT, uid
from tests.hypothesis_profiles import io_settings
from tests.openlive_client import bili_headers
from tests.play_support import (
    Anchor,
    PlayApp,
    danmaku,
    gift,
    install_play_key,
    make_anchor,
    make_app,
    start_game,
)
from tests.problems import problem
from tests.rewards_support import make_campaign

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem", "SendMessage",
          "SendMessageBatch", "PutSecretValue", "CreateSecret", "DeleteMessage"}
# The audit table records every admin change and withdrawal ATTEMPT before the domain decides (a refused
# change is audited with its status too); it is the one write a refusal may cause, and only after the
# request validated.
AUDIT_TABLE = "rewardgate-local-audit"
# An open-live call whose signature verified records its nonce and counts against the app's rate limit
# (the security centre), whatever it is answered: the one table a refused /v2/app/* call may write.
PLAY_GUARD_TABLE = "rewardgate-local-play-guard"


class WriteRecorder:
    """Every AWS write that succeeded in this process while recording (botocore's single entry point)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.active = False

    def note(self, operation: str, params: dict[str, Any]) -> None:
        if self.active and operation in WRITES:
            target = str(params.get("TableName") or params.get("QueueUrl") or params.get("SecretId") or
                         [i for i in params.get("TransactItems", [])])
            with self.lock:
                self.calls.append((operation, target))

    @contextmanager
    def recording(self) -> Iterator[list[tuple[str, str]]]:
        self.calls = []
        self.active = True
        try:
            yield self.calls
        finally:
            self.active = False


@pytest.fixture(scope="module")
def recorder() -> Iterator[WriteRecorder]:
    found = WriteRecorder()
    original = botocore.client.BaseClient._make_api_call

    def spy(self, operation_name, api_params):
        answer = original(self, operation_name, api_params)
        # recorded once it succeeded: a transaction cancelled by its condition changed nothing
        found.note(operation_name, api_params)
        return answer

    botocore.client.BaseClient._make_api_call = spy
    try:
        yield found
    finally:
        botocore.client.BaseClient._make_api_call = original


@pytest.fixture(scope="module")
def app_and_doc(client):
    import app
    from chalicelib.edge.openapi import build

    return app.app, build(app.app)


# --- the document ---------------------------------------------------------------------------------

def test_openapi__document__valid_openapi_3_1(app_and_doc):
    _, doc = app_and_doc
    validate_spec(doc)
    assert doc["openapi"] == "3.1.0"


def test_openapi__routes_and_document__match_both_ways(app_and_doc):
    app, doc = app_and_doc
    in_app = {(path, method.lower()) for path, methods in app.routes.items() for method in methods}
    in_doc = {(path, method) for path, methods in doc["paths"].items() for method in methods}
    assert in_app == in_doc
    assert len(in_app) >= 21


def test_openapi__checked_in_copy__is_the_generated_document(app_and_doc):
    # `make openapi` writes docs/openapi.json; a route or model changed without it fails here
    _, doc = app_and_doc
    assert json.loads((ROOT / "docs" / "openapi.json").read_text()) == doc


def test_openapi__served_publicly__the_same_document(client, app_and_doc):
    response = client.http.get("/openapi.json")
    assert (response.status_code, response.headers["Content-Type"]) == (200, "application/json")
    assert json.loads(response.body) == app_and_doc[1]


# --- problem+json on every refusal ----------------------------------------------------------------

def test_refusal__method_not_allowed__problem_json_with_allow(client):
    response = client.http.delete("/v1/grants")
    assert response.status_code == 405
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Allow"] == "POST"
    assert json.loads(response.body) == problem("method_not_allowed", "Unsupported method: DELETE")


def test_refusal__unsupported_media_type__problem_json(client):
    response = client.http.post("/v1/grants", body="a=b", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (response.status_code, response.headers["Content-Type"]) == (415, "application/problem+json")
    assert json.loads(response.body) == problem("unsupported_media_type",
                                                "Unsupported media type: application/x-www-form-urlencoded")


def test_refusal__every_response__carries_request_and_correlation_ids(client):
    response = client.http.get("/v1/admin/switches", headers={"X-Correlation-Id": "trace-42"})
    assert response.headers["X-Correlation-Id"] == "trace-42"
    assert len(response.headers["X-Request-Id"]) >= 8


def test_refusal__storage_failure__no_internal_cause_in_the_body(client, monkeypatch, capsys):
    # a storage failure once answered {"cause": "InternalServerError"}; the log keeps it
    from botocore.exceptions import ClientError
    from pynamodb.exceptions import GetError

    from chalicelib.rewards import config_store
    from chalicelib.rewards.tables import ConfigItem

    def broken(*_args, **_kwargs):
        error = ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "GetItem")
        raise GetError("Failed to get item", cause=error)

    monkeypatch.setattr(ConfigItem, "get", broken)
    monkeypatch.setattr("chalicelib.dynamo.time.sleep", lambda _s: None, raising=False)
    config_store.invalidate()
    response = client.http.get(f"/v1/admin/activities/{uid('act')}")
    assert response.status_code == 503
    assert json.loads(response.body) == problem("storage_unavailable")
    assert b"InternalServerError" not in response.body
    assert "InternalServerError" in capsys.readouterr().out


# --- the fuzz -------------------------------------------------------------------------------------

def _schema_validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator({**schema, "components": doc["components"]})


def _ids(draw_from: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(draw_from), st.text(min_size=0, max_size=80),
                     st.from_regex(r"[A-Za-z0-9.#_|-]{1,70}", fullmatch=True))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64) | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def _mutations(example: dict[str, Any]) -> st.SearchStrategy[Any]:
    keys = sorted(example)
    return st.one_of(
        st.just(example),
        st.builds(lambda k, v: {**example, k: v}, st.sampled_from(keys), JSON_VALUES),
        st.builds(lambda k: {n: v for n, v in example.items() if n != k}, st.sampled_from(keys)),
        st.builds(lambda k, v: {**example, k: v}, st.text(min_size=1, max_size=12), JSON_VALUES),
        JSON_VALUES,
    )


def _examples(campaign, play) -> dict[tuple[str, str], dict[str, Any]]:
    """Per operation: a body (and query) that would be accepted."""
    grant = campaign.grant_body("fuzz-user")
    child = {"sub_activity_id": "formal", "purpose": "formal", "starts_at_ms": 0, "ends_at_ms": 4_000_000_000_000}
    return {
        ("POST", "/v1/grants"): {"body": grant},
        ("POST", "/v1/grants/batch"): {"body": {"grants": [grant]}},
        ("PUT", "/v1/admin/activities/{activity_id}"): {"body": {"name": "fuzz", "children": [child]}},
        ("PUT", "/v1/admin/activities/{activity_id}/scenes/{scene_id}"): {
            "body": {"award_type": "cash", "order_cap": 10, "total": 100}},
        ("PUT", "/v1/admin/switches/{name}"): {"body": {"enabled": True}},
        ("POST", "/v1/admin/reconciliations"): {"body": {"hour": "2020-01-01T00"}},
        ("POST", "/v1/wallets/{act_id}/withdrawals"): {
            "body": {"activity_id": campaign.activity_id, "request_id": "fuzz-w", "amount": 1}},
        ("POST", "/callbacks/{tp_app_id}/auth"): {
            "body": {"TimeStamp": "1", "Nonce": "1", "Encrypt": "AAAA", "MsgSignature": "0" * 40}},
        ("POST", "/callbacks/{tp_app_id}/events"): {
            "body": {"TimeStamp": 1, "Nonce": 1, "Encrypt": "AAAA", "MsgSignature": "0" * 40}},
        ("PUT", "/v1/admin/play-apps/{app_id}"): {
            "body": {"name": "fuzz", "share_bp": 5000, "interactive_gift_ids": [31039], "sandbox": False}},
        ("POST", "/v1/play/anchors/{anchor_id}/code"): {"body": {"room_id": play.admin_room, "uname": "fuzz"}},
        ("POST", "/v1/play/rooms/{room_id}/events"): {"body": {"events": [danmaku(), gift()], "test": True}},
        ("GET", "/v1/play-apps/{app_id}/settlement"): {"query": {"day": "2030-01-01"}},
        ("POST", "/v2/app/start"): {"body": {"code": play.anchor.code, "app_id": play.app.app_id}},
        ("POST", "/v2/app/heartbeat"): {"body": {"game_id": play.game_id}},
        ("POST", "/v2/app/batchHeartbeat"): {"body": {"game_ids": [play.game_id, "gone"]}},
        ("POST", "/v2/app/end"): {"body": {"app_id": play.app.app_id, "game_id": play.ended_game_id}},
        ("POST", "/v2/app/events"): {"body": {"game_id": play.game_id, "after_seq": 0, "limit": 5}},
    }


@dataclass(frozen=True)
class PlayWorld:
    """A sandbox play app (no rate limit the fuzz can reach) with a running game, and ids the fuzz may use."""

    app: PlayApp
    anchor: Anchor
    game_id: str
    ended_game_id: str  # the fuzz of /v2/app/end ends this one, so the other game keeps running
    admin_app_id: int  # the admin fuzz may change this app, never the one whose calls are signed
    admin_anchor_id: int  # the code fuzz may refresh this anchor's code, never the running game's
    admin_room: int


def _play(client) -> PlayWorld:
    if "p" not in _MADE:
        install_play_key()
        app = make_app(client, sandbox=True, limits={api: 100_000 for api in
                                                     ("start", "heartbeat", "batchHeartbeat", "end", "events")})
        anchor, other, admin = make_anchor(client), make_anchor(client), make_anchor(client)
        _MADE["p"] = PlayWorld(app=app, anchor=anchor, game_id=start_game(client, app, anchor),
                                   ended_game_id=start_game(client, app, other), admin_app_id=make_app(client).app_id,
                                   admin_anchor_id=admin.anchor_id, admin_room=admin.room_id)
    return _MADE["p"]


QUERY_NAMES = ["activity_id", "sub_activity_id", "asset", "limit", "cursor", "type", "day", "bogus"]
# Switching grants or withdrawals off would make later examples answer 503 on purpose: the fuzz keeps
# switch names to ones no other test reads.
SWITCH_NAMES = ["grants:fuzzact:fuzzscene", "grants.fuzzact.fuzzscene", "withdrawal_gray_percent-x",
                "nope"]


def _operation_params() -> list[tuple[str, str]]:
    import app
    from chalicelib.edge.openapi import operations_of

    return [(op.method, op.path) for op in operations_of(app.app) if op.path != "/openapi.json"]


@pytest.mark.hypothesis  # its property runs inside the test: `make soak` selects it by this marker
@pytest.mark.parametrize(("method", "path"), _operation_params())
def test_fuzz__every_operation__no_5xx_documented_status_and_schema_no_write_on_refusal(
        client, app_and_doc, recorder, tp_app, method, path):
    from chalicelib.edge.registry import OPERATIONS

    _, doc = app_and_doc
    campaign, play = _campaign(client), _play(client)
    example = _examples(campaign, play).get((method, path), {})
    spec = doc["paths"][path][method.lower()]
    # Bilibili's /v2/app/* answer in their own envelope: signed with the play app's key, so the fuzz reaches
    # the body checks and the games behind them
    envelope = not OPERATIONS[(method, path)].problems and path.startswith("/v2/app/")
    path_names = [p["name"] for p in spec.get("parameters", []) if p["in"] == "path"]
    known_ids = {"activity_id": [campaign.activity_id], "scene_id": [campaign.scene_id],
                 "tp_app_id": [tp_app.tp_app_id], "name": SWITCH_NAMES, "hour": ["2020-01-01T00", "2020010100"],
                 "app_id": [str(play.admin_app_id), "9007199254740992"], "anchor_id": [str(play.admin_anchor_id)],
                 "room_id": [str(play.anchor.room_id), "0"]}
    path_values = st.fixed_dictionaries({name: _ids(known_ids.get(name, ["u1", "fuzz-user"])) for name in path_names})
    query = st.one_of(st.just(example.get("query", {})), st.dictionaries(
        st.sampled_from(QUERY_NAMES), st.one_of(st.sampled_from([campaign.activity_id, "formal", "CNY", "5", "²", "0",
                                                                 "2030-01-01", "2030-02-30"]),
                                                st.text(max_size=30)), max_size=3))
    bodies = _mutations(example["body"]) if "body" in example else st.none()
    if path == "/v1/admin/switches/{name}":
        path_values = st.fixed_dictionaries({"name": st.sampled_from(SWITCH_NAMES)})

    @io_settings()
    @given(path_values, query, bodies)
    def run(values, params, body):
        url = path
        for name, value in values.items():
            url = url.replace("{" + name + "}", urllib.parse.quote(value, safe="") or "%20")
        if params:
            url += "?" + urllib.parse.urlencode(params)
        kwargs: dict[str, Any] = {}
        if method != "GET":
            raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
            headers = {"Content-Type": "application/json"}
            if envelope:
                # (a fresh nonce each time: Hypothesis seeds `random`, which the client's default nonce uses)
                headers = bili_headers(play.app.key.access_key_id, play.app.key.access_key_secret, raw.encode(),
                                       nonce=uuid.uuid4().hex)
            kwargs = {"body": raw, "headers": headers}
        with recorder.recording() as writes:
            response = getattr(client.http, method.lower())(url, **kwargs)
        status = response.status_code
        # THEN no 5xx, a documented status, and an answer of the documented shape
        assert status < 500, (url, body, response.body)
        documented = spec["responses"]
        assert str(status) in documented, (status, url, body, response.body)
        content = documented[str(status)].get("content", {})
        media_type = response.headers.get("Content-Type")
        assert media_type in content, (status, media_type, sorted(content))
        if media_type.endswith("json"):
            _schema_validator(doc, content[media_type]["schema"]).validate(json.loads(response.body))
        if envelope:
            # AND a refusal in the envelope wrote nothing but the security centre's nonce and rate counter
            if json.loads(response.body)["code"] != 0:
                assert [w for w in writes if PLAY_GUARD_TABLE not in w[1]] == [], (url, body, writes)
        elif status >= 400:
            assert media_type == "application/problem+json"
            # AND a refusal wrote nothing (only the audit record of a validated admin change or withdrawal)
            assert [w for w in writes if AUDIT_TABLE not in w[1]] == [], (url, body, writes)

    run()


_MADE: dict[str, Any] = {}  # what the fuzz made once for the module: the campaign, the play world


def _campaign(client):
    if "c" not in _MADE:
        _MADE["c"] = make_campaign(client, total=10_000, order_cap=100)
    return _MADE["c"]


def test_registry__operation_with_its_own_envelope__errors_rendered_by_it_not_as_problems():
    # GIVEN an operation of another protocol (as Bilibili's /v2/app/*: HTTP 200 and {code, message, data})
    from chalice import Blueprint, Chalice
    from chalice.test import Client

    from chalicelib import errors
    from chalicelib.edge.models import RequestModel
    from chalicelib.edge.registry import OPERATIONS, PUBLIC, Reply, operation
    from chalicelib.http import edge_middleware, json_response

    class Start(RequestModel):
        code: str

    bp = Blueprint(__name__)
    envelope = {"type": "object", "required": ["code", "message", "data"]}

    @operation(bp, "POST", "/v2/test-envelope/start", summary="t", access=PUBLIC, body=Start, problems=False,
               responses={200: Reply("envelope", envelope)},
               on_error=lambda error: json_response({"code": 7007, "message": error.code, "data": {}}))
    def start(body: Start):
        if body.code == "bad":
            raise errors.NotFound("no such code")
        return json_response({"code": 0, "message": "ok", "data": {"code": body.code}})

    app = Chalice(app_name="envelope-test")
    app.register_middleware(edge_middleware, "http")
    app.register_blueprint(bp)
    try:
        with Client(app) as test_client:
            def post(body):
                response = test_client.http.post("/v2/test-envelope/start", body=json.dumps(body),
                                                 headers={"Content-Type": "application/json"})
                return response.status_code, response.headers["Content-Type"], json.loads(response.body)

            # THEN success, a domain error and a validation error all answer in its envelope, HTTP 200
            assert post({"code": "c1"}) == (200, "application/json", {"code": 0, "message": "ok",
                                                                       "data": {"code": "c1"}})
            assert post({"code": "bad"})[2] == {"code": 7007, "message": "not_found", "data": {}}
            assert post({"code": 5})[:2] == (200, "application/json")
            assert post({"code": 5})[2]["message"] == "invalid_field"
    finally:
        OPERATIONS.pop(("POST", "/v2/test-envelope/start"))
