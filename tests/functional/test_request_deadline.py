"""Deadlines at the API: DynamoDB throttles every call, and the grant route must still answer its own
retryable 503 (problem+json, `Retry-After`) before API Gateway cuts the request at 29 s with a 504.

DynamoDB is replaced by a stub endpoint that answers every request `400 ThrottlingException` after a
simulated delay: real HTTP, real botocore retries, real `with_retries`, but time is simulated (`time.monotonic`
and `time.sleep` advance a shared clock), so the test asserts counted attempts and simulated elapsed time,
never wall-clock time.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from chalice.local import LambdaContext, LambdaEventConverter, RouteMatcher

from tests.problems import problem
from tests.rewards_support import make_campaign
from tests.sim_clock import SimClock

API_GATEWAY_LIMIT_S = 29  # API Gateway's integration timeout: beyond it the caller gets 504


class ThrottlingDynamoDB:
    """A DynamoDB endpoint that throttles every request; records the simulated time each one started."""

    def __init__(self, clock: SimClock, answer_s: float) -> None:
        stub = self
        self.clock = clock
        self.answer_s = answer_s
        self.started: list[float] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stub.started.append(stub.clock.monotonic())
                stub.clock.advance(stub.answer_s)
                body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                                   "message": "Rate of requests exceeds the allowed throughput."}).encode()
                self.send_response(400)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _forget_dynamodb_connections() -> None:
    """Make every table model (and the transaction connection) build its botocore client anew."""
    from chalicelib import dynamo

    for model in dynamo.all_models():
        model._connection = None
    dynamo._connection = None


@contextlib.contextmanager
def throttling_dynamodb(monkeypatch, answer_s: float) -> Iterator[ThrottlingDynamoDB]:
    """Simulated time, and DynamoDB throttling every request after `answer_s`, until the block ends."""
    clock = SimClock()
    stub = ThrottlingDynamoDB(clock, answer_s)
    saved = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = stub.endpoint
    _forget_dynamodb_connections()
    monkeypatch.setattr(time, "monotonic", clock.monotonic)
    monkeypatch.setattr(time, "sleep", clock.sleep)
    try:
        yield stub
    finally:
        monkeypatch.undo()
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = saved
        _forget_dynamodb_connections()
        stub.server.shutdown()
        stub.server.server_close()


def lambda_call(body: dict, remaining_ms: int, path: str = "/v1/grants") -> tuple[int, dict, dict]:
    """POST `path` as API Gateway invokes the API function, with `remaining_ms` left in the invocation."""
    import app

    converter = LambdaEventConverter(RouteMatcher(list(app.app.routes)), app.app.api.binary_types)
    event = converter.create_lambda_event(method="POST", path=path,
                                          headers={"content-type": "application/json"},
                                          body=json.dumps(body).encode())
    answer = app.app(event, LambdaContext("api_handler", 512, remaining_ms))
    return answer["statusCode"], answer["headers"], json.loads(answer["body"])


# The slower the throttled answers, the fewer fit: 29 s is the API function's whole time, 3 s an invocation near
# its end (there, one call's botocore attempts must fit in what the margin leaves, hence fast answers).
@pytest.mark.parametrize("remaining_s,answer_s", [(API_GATEWAY_LIMIT_S, 0.5), (3, 0.1)])
def test_grant__dynamodb_throttles_every_call__503_retryable_before_the_invocation_ends(
        client, monkeypatch, remaining_s, answer_s):
    # GIVEN a configured scene, then DynamoDB throttling every request (each answer taking answer_s)
    campaign = make_campaign(client)
    body = campaign.grant_body("u-throttled", amount=100)
    # AND a grant request arriving with `remaining_s` left in the API function's invocation
    with throttling_dynamodb(monkeypatch, answer_s) as stub:
        started = time.monotonic()
        # WHEN the grant is requested
        status, headers, answer = lambda_call(body, remaining_s * 1000)
        elapsed = time.monotonic() - started
    # THEN it is refused with the retryable storage problem
    assert (status, answer) == (503, problem("storage_unavailable"))
    # AND the answer came before the invocation (and API Gateway) would have cut it: simulated time, made of the
    # counted attempts, each taking answer_s, and the backoffs between them
    limit = min(remaining_s, API_GATEWAY_LIMIT_S)
    assert 1 <= len(stub.started) <= limit // answer_s
    assert all(at - started < limit for at in stub.started)
    assert elapsed < limit
    # AND it tells the caller when to retry
    assert int(headers["Retry-After"]) >= 1


def test_reconcile_api__steps_outlast_the_request_deadline__202_resumable_not_503(client, monkeypatch):
    # GIVEN a closed hour to reconcile, and reconciliation steps that each take 4 s (simulated time)
    from chalicelib import clock as rg_clock
    from chalicelib.reconcile import runner

    hour = rg_clock.hour_of(rg_clock.now_ms() - 2 * 3600 * 1000)
    sim = SimClock()
    monkeypatch.setattr(time, "monotonic", sim.monotonic)
    monkeypatch.setattr(time, "sleep", sim.sleep)
    real_step = runner.bucket_step
    steps: list[float] = []

    def slow_step(*args, **kwargs):
        steps.append(sim.monotonic())
        result = real_step(*args, **kwargs)
        sim.advance(4.0)
        return result

    monkeypatch.setattr(runner, "bucket_step", slow_step)
    # WHEN an operator asks for the hour's pass through the API, with the API function's whole 29 s ahead
    started = sim.monotonic()
    status, _headers, answer = lambda_call({"hour": runner.display_hour(hour)}, API_GATEWAY_LIMIT_S * 1000,
                                           path="/v1/admin/reconciliations")
    # THEN it stops starting steps while the one in progress can still finish and be stored: 202, POST again
    assert status == 202, answer
    assert (answer["status"], answer["progress"]["step"]) == ("running", len(steps))
    assert 1 <= len(steps) < runner.settings().hour_buckets
    # AND every step it started ended inside the request's deadline (the API function's time minus its margin)
    from chalicelib import deadline

    request_budget = deadline.budget_s(None, API_GATEWAY_LIMIT_S)
    assert all(at - started + 4.0 <= request_budget for at in steps), (steps, request_budget)
