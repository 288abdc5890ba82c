"""The local API server under 64 concurrent clients: no reset, no dropped connection, every answer right."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter

import pytest

from rewardgate_ops.local_api import make_server
from rewardgate_ops.services import free_port
from tests.rewards_support import make_campaign

CLIENTS = 64
REQUESTS_EACH = 10


@pytest.fixture(scope="module")
def api_port(client):
    import app

    port = free_port()
    server = make_server(app.app, "127.0.0.1", port)
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield port
    server.server.shutdown()
    server.server.server_close()


def _request(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        payload = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def test_local_api__64_concurrent_clients__no_connection_error_and_every_grant_once(client, api_port):
    # GIVEN a campaign, and 64 clients released at the same instant, each on a new connection per request
    campaign = make_campaign(client, total=10_000_000, order_cap=100, shard_count=8)
    start = threading.Barrier(CLIENTS)
    errors: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def run(n: int) -> None:
        start.wait()
        for i in range(REQUESTS_EACH):
            user = f"load{n}"
            try:
                if i % 2 == 0:
                    status, _, _ = _request(api_port, "POST", "/v1/grants",
                                            campaign.grant_body(user, rain_id=f"r{i}", amount=1))
                else:
                    status, _, _ = _request(api_port, "GET", f"/v1/wallets/{user}?activity_id={campaign.activity_id}")
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    errors[type(exc).__name__] += 1
                continue
            with lock:
                statuses[status] += 1

    began = time.monotonic()
    threads = [threading.Thread(target=run, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    total = CLIENTS * REQUESTS_EACH
    print(f"local API: clients={CLIENTS} requests={total} connection_errors={sum(errors.values())} "
          f"statuses={dict(sorted(statuses.items()))} seconds={elapsed:.1f} requests/s={total / elapsed:.0f}")
    # THEN no connection was reset or dropped, and every request got its designed answer
    assert errors == Counter()
    grants = CLIENTS * ((REQUESTS_EACH + 1) // 2)
    assert statuses == Counter({202: grants, 200: total - grants})


def test_local_api__unknown_path__problem_json_404(api_port):
    status, media_type, body = _request(api_port, "GET", "/v1/nothing-here")
    assert (status, media_type) == (404, "application/problem+json")
    assert json.loads(body)["code"] == "route_not_found"
