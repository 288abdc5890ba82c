"""Live push on the embedded local stack: events delivered/s and ingest-to-receipt latency to 1, 10 and 100
WebSocket connections on one game, SQS requests and DynamoDB write units per delivered event, each beside a
floor measured in the same run. Prints figures; asserts no timings.

Starts its own DynamoDB Local and moto, and the local stack's API process in-process: the REST API, the
emulated WebSocket API with its `@connections` endpoint, and the `live_push` worker polling its queue (the
local event-source loop). For each connection count it connects that many real `websockets` clients with a
game's auth_body, then:

  push   one platform thread injects `--events` danmaku in batches of `--batch` through the real
         `POST /v1/play/rooms/{room}/events` (dedupe, seq, stream item, one transaction per batch), and the
         pipeline delivers them: push message -> worker -> connections' cursors -> stream read -> frames ->
         `@connections` -> socket. Latency of an event: from the start of the POST that carried it to its
         receipt by a client; delivered/s: events x connections over the time from the first POST to the last
         receipt;
  floor  the same frames (one per injected batch) posted straight to every connection through the same
         `@connections` endpoint, 16 in parallel, as soon as each batch would have been stored: no DynamoDB, no
         SQS, no worker. Same latency and rate measures.

Units (AWS billing rules, `bench/meter.py`): SQS requests the application makes (push messages sent) plus
those of the event source (a receive and a delete per non-empty batch; the local poller's empty long polls
are left out: on AWS, Lambda's pollers make them whatever the traffic), and DynamoDB write units of the push
(the connection table: cursors) and of the ingest, per delivered event. Every client must receive every event
exactly once in order (after dropping duplicates), or the run fails.

    .venv/bin/python bench/live.py                       # 1, 10, 100 connections x 200 events
    .venv/bin/python bench/live.py --connections 1 10 --events 500 --batch 20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.update({"RG_STAGE": "local", "RG_LOG_LEVEL": "ERROR", "AWS_ACCESS_KEY_ID": "local",
                   "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"})
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)


class CountingPoller:
    """The event source's SQS client: counts the billed requests of non-empty batches (receive + delete)."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self.requests = 0
        self.lock = threading.Lock()

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        answer = self._sqs.receive_message(**kwargs)
        if answer.get("Messages"):
            with self.lock:
                self.requests += 1
        return answer

    def delete_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        with self.lock:
            self.requests += 1
        return self._sqs.delete_message_batch(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)


class Client:
    """A WebSocket client recording when each seq first arrived (and any gap or reordering)."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        self.conn = connect(url, open_timeout=30, close_timeout=2, legacy=True, max_size=2**20)
        self.arrived: dict[int, float] = {}
        self.last = 0
        self.problems: list[str] = []
        self.done = threading.Event()
        self.expect = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from websockets.exceptions import ConnectionClosed

        with contextlib.suppress(ConnectionClosed):
            for text in self.conn:
                now = time.perf_counter()
                value = json.loads(text)
                for m in value if isinstance(value, list) else [value]:
                    if m.get("op") != "event" or m["seq"] <= self.last:
                        continue
                    if m["seq"] != self.last + 1:
                        self.problems.append(f"gap: {self.last} then {m['seq']}")
                    self.last = m["seq"]
                    self.arrived.setdefault(m["seq"], now)
                if self.expect and self.last >= self.expect:
                    self.done.set()

    def close(self) -> None:
        self.conn.close()
        self.thread.join(timeout=5)


def danmaku(room_id: int, n: int) -> dict[str, Any]:
    return {"cmd": "LIVE_OPEN_PLATFORM_DM", "data": {
        "msg_id": uuid.uuid4().hex, "room_id": room_id, "open_id": str(uuid.uuid4()), "uname": "viewer",
        "uface": "", "msg": f"bench {n}", "dm_type": 0, "timestamp": int(time.time()), "fans_medal_level": 0}}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--events", type=int, default=200, help="events injected per connection count (200)")
    parser.add_argument("--batch", type=int, default=10, help="events per platform request (10)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()
    from bench.rain import start_stack

    # One game takes every connection of a run, then as many again for the floor (while the first ones' $disconnect
    # may still be on its way): raise the per-game cap (issue 24: 10 by default) to twice the largest.
    os.environ["RG_LIVE_MAX_CONNECTIONS_PER_GAME"] = str(2 * max(args.connections))
    workdir = Path(tempfile.mkdtemp(prefix="rewardgate-bench-live-"))
    print(f"starting DynamoDB Local and moto (logs in {workdir}) ...", file=sys.stderr)
    ddb, moto = start_stack(workdir)
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            return run(args, sys.__stdout__)
    finally:
        moto.stop()
        ddb.stop()


def run(args: argparse.Namespace, out: Any) -> int:
    import boto3

    import app as chalice_app
    from bench.capacity_rules import schemas_from_cloudformation
    from bench.meter import Meter, attach_rewardgate
    from chalicelib.live import config as live_config
    from chalicelib.live import gateway
    from chalicelib.play import apps, keys
    from chalicelib.play import config as play_config
    from chalicelib.play.models import PlayAppPut
    from chalicelib.secrets import put_secret_json
    from infra.template import data_resources
    from rewardgate_ops.event_source import start_worker_thread, worker_for
    from rewardgate_ops.local_api import make_server
    from rewardgate_ops.local_ws import WebSocketGateway, app_handlers
    from rewardgate_ops.services import free_port
    from tests.openlive_client import HttpTransport, OpenLiveClient

    ws = WebSocketGateway(app_handlers(chalice_app.app))
    ws.start("127.0.0.1", 0)
    port = free_port()
    server = make_server(chalice_app.app, "127.0.0.1", port, ws_gateway=ws)
    threading.Thread(target=server.server.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{port}"
    os.environ["RG_LIVE_CONNECTIONS_URL"] = api
    os.environ["RG_PLAY_WSS_LINKS"] = f"ws://127.0.0.1:{ws.port}"
    live_config.reset()
    play_config.reset()
    gateway.reset()

    put_secret_json(play_config.play_settings().key_secret, keys.new_master_secret())
    app_id = 770001
    apps.put_app(app_id, PlayAppPut(name="bench", share_bp=5000, interactive_gift_ids=[1], sandbox=True,
                                    limits={"start": 100_000, "heartbeat": 100_000}))
    key = keys.new_app_key(app_id)
    keys.put_app_key(key)
    apps.set_access_key_id(app_id, key.access_key_id)
    play = OpenLiveClient(HttpTransport(api), app_id, key.access_key_id, key.access_key_secret)

    poller = CountingPoller(boto3.session.Session().client("sqs"))
    stop = threading.Event()
    config = next(e for e in chalice_app.app.event_sources if e.name == "live_push")
    worker = worker_for(config, poller)
    worker.poll_wait_s = 1
    start_worker_thread(worker, poller, stop)

    meter = Meter(schemas_from_cloudformation(data_resources("local")))
    attach_rewardgate(meter)
    floor_client = boto3.session.Session().client("apigatewaymanagementapi", endpoint_url=api)

    def post(room: int, messages: list[dict[str, Any]]) -> list[int]:
        request = urllib.request.Request(f"{api}/v1/play/rooms/{room}/events",
                                         json.dumps({"events": messages, "test": True}).encode(),
                                         {"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            results = json.loads(response.read())["results"]
        assert {r["status"] for r in results} == {"appended"}, results
        return [r["seq"] for r in results]

    lines = [f"live push bench: {args.events} events per run in batches of {args.batch}, one game; "
             f"{os.cpu_count()} CPUs; DynamoDB Local + moto; local WebSocket API (websockets) in-process"]
    problems: list[str] = []
    points: list[dict[str, Any]] = []  # --json
    for n in args.connections:
        room, anchor = 8_000_000 + n, 6_000_000 + n
        with urllib.request.urlopen(urllib.request.Request(
                f"{api}/v1/play/anchors/{anchor}/code", json.dumps({"room_id": room}).encode(),
                {"Content-Type": "application/json"}, method="POST")) as answer:
            code = json.loads(answer.read())["code"]
        data = play.start(code)["data"]
        link = f"{data['websocket_info']['wss_link'][0]}?auth_body={data['websocket_info']['auth_body']}"
        with ThreadPoolExecutor(16) as pool:
            clients = list(pool.map(Client, [link] * n))
        time.sleep(1.5)  # the connections' first (empty) pushes
        batches = [[danmaku(room, i) for i in range(s, min(s + args.batch, args.events))]
                   for s in range(0, args.events, args.batch)]
        for c in clients:
            c.expect = args.events
        sent_at: dict[int, float] = {}
        sqs_before, scope = poller.requests, f"push-{n}"
        with meter.scope(scope):
            began = time.perf_counter()
            for batch in batches:
                t = time.perf_counter()
                for seq in post(room, batch):
                    sent_at[seq] = t
            for c in clients:
                c.done.wait(120)
            elapsed = max(max(c.arrived.values(), default=began) for c in clients) - began
        push_sqs = poller.requests - sqs_before
        usage = meter.usage(scope)
        delivered = sum(len(c.arrived) for c in clients)
        latencies = [(at - sent_at[seq]) * 1000 for c in clients for seq, at in c.arrived.items()]
        for i, c in enumerate(clients):
            if c.last != args.events or c.problems:
                problems.append(f"{n} connections, client {i}: last seq {c.last} of {args.events} {c.problems[:3]}")
            c.close()

        # The floor: the same frames posted straight to fresh connections, no storage, no queue, no worker.
        ids: list[str] = []
        # connected after every event: the pipeline has nothing to push them, only the floor's posts arrive
        with ThreadPoolExecutor(16) as pool:
            floor_clients = list(pool.map(Client, [f"{link}&after_seq={args.events}"] * n))
        time.sleep(1.5)
        with ws._lock:  # the emulator's open connections, newest last
            ids = list(ws._open)[-n:]
        for c in floor_clients:
            c.expect = args.events
            c.last = 0
        frames: list[tuple[list[int], str]] = []
        seq = 0
        for batch in batches:
            seqs = list(range(seq + 1, seq + 1 + len(batch)))
            seq += len(batch)
            frames.append((seqs, json.dumps([{"op": "event", "game_id": "floor", "seq": s, "cmd": m["cmd"],
                                              "data": m["data"]} for s, m in zip(seqs, batch, strict=True)])))
        floor_sent: dict[int, float] = {}
        began = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            for seqs, text in frames:
                t = time.perf_counter()
                for s in seqs:
                    floor_sent[s] = t
                list(pool.map(lambda cid, body=text: floor_client.post_to_connection(ConnectionId=cid,
                                                                                     Data=body.encode()), ids))
        for c in floor_clients:
            c.done.wait(60)
        floor_elapsed = max(max(c.arrived.values(), default=began) for c in floor_clients) - began
        floor_delivered = sum(len(c.arrived) for c in floor_clients)
        floor_lat = [(at - floor_sent[s]) * 1000 for c in floor_clients for s, at in c.arrived.items()]
        for c in floor_clients:
            c.close()

        rate, floor_rate = delivered / elapsed, floor_delivered / floor_elapsed
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        f50, f99 = percentile(floor_lat, 50), percentile(floor_lat, 99)
        push_wru = usage.wru_by.get("rewardgate-local-live-connections", 0.0)
        points.append({"connections": n, "events_per_s": rate, "floor_events_per_s": floor_rate, "latency_ms_p50": p50,
                       "latency_ms_p99": p99, "floor_latency_ms_p50": f50, "floor_latency_ms_p99": f99})
        app_sqs = usage.sqs_billed
        lines += [
            f"{n:>3} connection(s): delivered {rate:8.0f} events/s | floor (bare @connections posts) "
            f"{floor_rate:8.0f}/s, ratio {rate / floor_rate:.2f}",
            f"    ingest-to-receipt latency p50 {p50:7.1f} ms, p99 {p99:7.1f} ms | floor post-to-receipt p50 "
            f"{f50:6.1f} ms, p99 {f99:6.1f} ms | ratio p50 {p50 / f50:.1f}x, p99 {p99 / f99:.1f}x",
            f"    per delivered event: SQS requests {(app_sqs + push_sqs) / delivered:.4f} (app sends {app_sqs}, "
            f"event source {push_sqs}), write units: push (cursors) {push_wru / delivered:.4f}, all "
            f"{usage.wru / delivered:.4f} (ingest included: {usage.wru - push_wru:.0f} for {args.events} events) "
            f"| floor 0 SQS, 0 write units",
        ]
    stop.set()
    ws.stop()
    server.server.shutdown()
    lines.append(f"verify: every client received every event once, in order: {'OK' if not problems else 'FAILED'}")
    lines += [f"  {p}" for p in problems]
    out.write("\n".join(lines) + "\n")
    out.flush()
    from bench import results

    results.write(args.json, "live", {"events": args.events, "batch": args.batch},
                  {"points": points, "ok": not problems})
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
