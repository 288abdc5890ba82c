"""The edge's records: one access line per request, business metrics as EMF, the audit log with the
caller's IAM ARN (as API Gateway's requestContext carries it), and the README's route table."""

from __future__ import annotations

import json

import pytest
from chalice.local import LambdaContext, LambdaEventConverter, RouteMatcher

from chalicelib.audit import log as audit_log
from chalicelib.rewards import config_store
from tests.conftest import uid
from tests.problems import invalid, problem
from tests.rewards_support import call, make_campaign

ALICE = "arn:aws:iam::123456789012:user/alice"


def gateway_call(method: str, path: str, body: dict | None = None, caller_arn: str | None = ALICE,
                 headers: dict | None = None) -> tuple[int, dict, dict]:
    """Invoke the app as API Gateway does after IAM authorization: the caller's ARN in the requestContext."""
    import app

    converter = LambdaEventConverter(RouteMatcher(list(app.app.routes)), app.app.api.binary_types)
    raw = json.dumps(body).encode() if body is not None else None
    event = converter.create_lambda_event(method=method, path=path, headers={
        "content-type": "application/json", **(headers or {})}, body=raw)
    if caller_arn:
        event["requestContext"]["identity"]["userArn"] = caller_arn
    answer = app.app(event, LambdaContext("api_handler", 512, 29_000))
    return answer["statusCode"], answer["headers"], json.loads(answer["body"])


def log_lines(text: str) -> list[dict]:
    found = []
    for line in text.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def test_access_log__one_structured_line_per_request_with_route_status_latency_ids_and_caller(capsys):
    from chalicelib.observability import logger

    logger.setLevel("INFO")  # the suite runs at WARNING (tests/conftest.py); deployed stages log INFO
    try:
        status, headers, _ = gateway_call("GET", "/v1/admin/switches", headers={"x-correlation-id": "corr-7"})
    finally:
        logger.setLevel("WARNING")
    assert status == 200
    access = [line for line in log_lines(capsys.readouterr().out) if line.get("message") == "request"]
    assert len(access) == 1
    (line,) = access
    assert line["http"]["route"] == "/v1/admin/switches" and line["http"]["method"] == "GET"
    assert line["http"]["status"] == 200 and line["http"]["latency_ms"] >= 0
    assert (line["request_id"], line["correlation_id"], line["caller_arn"]) == (
        headers["X-Request-Id"], "corr-7", ALICE)


def test_metrics__grant_and_refusals__one_emf_document_per_request_with_the_alarmed_dimensions(client, capsys):
    campaign = make_campaign(client, total=100, order_cap=100, shard_count=1)
    capsys.readouterr()
    assert call(client, "POST", "/v1/grants", campaign.grant_body("m1", amount=100))[0] == 202
    assert call(client, "POST", "/v1/grants", campaign.grant_body("m2", amount=100))[0] == 409
    documents = [line for line in log_lines(capsys.readouterr().out) if "_aws" in line]
    metrics = [{m["Name"] for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]} for d in documents]
    assert metrics == [{"Requests", "GrantsCreated"}, {"Requests", "SoldOut"}]
    for document in documents:
        assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["stage", "service"]]
        assert (document["stage"], document["service"]) == ("local", "rewardgate")


def test_metrics__deliberate_refusal__answered_503_not_counted_as_a_server_error(client, capsys):
    campaign = make_campaign(client)
    switch = f"grants:{campaign.activity_id}:{campaign.scene_id}"
    assert call(client, "PUT", f"/v1/admin/switches/{switch}", {"enabled": False})[0] == 200
    capsys.readouterr()
    assert call(client, "POST", "/v1/grants", campaign.grant_body("d1"))[0] == 503
    (document,) = [line for line in log_lines(capsys.readouterr().out) if "_aws" in line]
    assert document["Requests"] == [1.0] and "ServerErrors" not in document


def test_audit__admin_change__recorded_with_the_callers_arn_and_status_before_and_after():
    # GIVEN an operator (IAM user alice) switching grants off for a scene
    name = f"grants:{uid('act')}:s1"
    since = audit_log.clock.now_ms()
    status, _, body = gateway_call("PUT", f"/v1/admin/switches/{name}", {"enabled": False})
    assert (status, body) == (200, {"name": name, "enabled": False})
    # WHEN the audit log is read THEN it names alice, the action, the target, the body and the status
    entries = [e for e in audit_log.entries(since) if e["target"] == {"name": name}]
    assert [(e["action"], e["caller_arn"], e["request"], e["status"]) for e in entries] == [
        ("switch.put", ALICE, {"enabled": False, "percent": None}, 200)]


def test_audit__invalid_request__refused_before_anything_is_recorded():
    name = f"grants:{uid('act')}:s1"
    since = audit_log.clock.now_ms()
    status, _, body = gateway_call("PUT", f"/v1/admin/switches/{name}", {"enabled": "no"})
    assert (status, body) == (400, invalid(("enabled", "must be true or false")))
    assert [e for e in audit_log.entries(since) if e["target"] == {"name": name}] == []


def test_audit__record_cannot_be_written__change_refused_and_not_made(monkeypatch):
    from chalicelib.audit.tables import AuditItem
    from chalicelib.errors import StorageUnavailable

    def unavailable(*_args, **_kwargs):
        raise StorageUnavailable("audit table unavailable")

    name = f"grants:{uid('act')}:s1"
    monkeypatch.setattr(AuditItem, "save", unavailable)
    status, _, body = gateway_call("PUT", f"/v1/admin/switches/{name}", {"enabled": False})
    assert (status, body) == (503, problem("storage_unavailable"))
    config_store.invalidate()
    assert name not in config_store.get_switches().values


def test_openapi_json__committed_file__is_the_current_document():
    from chalicelib.edge.__main__ import main

    assert main(["--check"]) == 0, "docs/openapi.json is stale: run `make openapi`"


def test_docs_route_table__published_routes__match_the_registry():
    # GIVEN the route table the docs site renders from docs/openapi.json (docs/hooks.py)
    import json
    import re

    import app
    from chalicelib.edge.registry import OPERATIONS
    from tests.conftest import ROOT
    from tests.unit.test_docs_site import load_hooks

    table = load_hooks().route_table_markdown(json.loads((ROOT / "docs" / "openapi.json").read_text()))
    published = set(re.findall(r"\[`([A-Z]+) (/[^`]*)`\]", table))
    # THEN it lists exactly the routes the app serves, each a declared operation
    served = {(method, path) for path, methods in app.app.routes.items() for method in methods}
    assert published == served
    assert served <= set(OPERATIONS)


@pytest.mark.parametrize("alarm_metric", ["ServerErrors", "Requests"])
def test_alarm__api_5xx__watches_the_metrics_the_edge_emits(alarm_metric):
    from infra.template import merge_template

    alarm = merge_template("local")["Resources"]["Api5xxAlarm"]["Properties"]
    (stat,) = [m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m and
               m["MetricStat"]["Metric"]["MetricName"] == alarm_metric]
    assert {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]} == {"stage": "local", "service": "rewardgate"}
    assert stat["Metric"]["Namespace"] == "rewardgate"
