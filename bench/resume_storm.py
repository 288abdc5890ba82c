"""A resume storm on one WebSocket connection, before and after issue 24's bounds, in one run. Prints figures;
asserts no timings.

Starts its own DynamoDB Local and moto, provisions every table and queue, starts one game holding `--events`
danmaku and connects one client through the real `$connect` handler (API Gateway's event shapes); posts to
`@connections` are counted (frames, bytes), not sent. Then, for each mode, a fresh connection sends `--frames`
`{"op": "resume", "after_seq": 0}` frames through the real `$default` handler, and the `live` queue is drained
through the real push worker (what the storm left for it):

  unbounded  issue 24's baseline (main ff62768): every resume frame served, each replaying the whole stream
             inside `$default` (RG_LIVE_FRAMES_PER_MINUTE and RG_LIVE_REPLAY_MAX_EVENTS set beyond reach);
  bounded    the defaults: at most RG_LIVE_FRAMES_PER_MINUTE resume/ping frames a minute per connection, each
             replaying at most RG_LIVE_REPLAY_MAX_EVENTS events inside `$default`; the rest goes to the client
             by the normal push, from its cursor, once.

For each: frames and bytes in, events re-sent (by the handler, by the worker), bytes out, bytes out per byte
in, and the bounded/unbounded ratio. Every mode must deliver seq 1..N in order to the client at least once
after its last resume, or the run fails.

    .venv/bin/python bench/resume_storm.py                 # 600 events, 10 resume frames
    .venv/bin/python bench/resume_storm.py --events 2000 --frames 30
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.update({"RG_STAGE": "local", "RG_LOG_LEVEL": "ERROR", "AWS_ACCESS_KEY_ID": "local",
                   "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"})
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)


class Outbox:
    """`@connections` as counters: frames and bytes posted per connection, and the event seqs they carried."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = defaultdict(int)
        self.bytes: dict[str, int] = defaultdict(int)
        self.seqs: dict[str, list[int]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def post(self, connection_id: str, text: str) -> None:
        value = json.loads(text)
        messages = value if isinstance(value, list) else [value]
        with self.lock:
            self.frames[connection_id] += 1
            self.bytes[connection_id] += len(text.encode())
            self.seqs[connection_id] += [m["seq"] for m in messages if m.get("op") == "event"]
            self.errors[connection_id] += sum(1 for m in messages if m.get("op") == "error")

    def close(self, connection_id: str) -> None:
        """Closing is not what is measured."""


@dataclass
class Figures:
    mode: str
    frames_in: int = 0
    bytes_in: int = 0
    refused: int = 0
    events_by_handler: int = 0
    events_by_worker: int = 0
    bytes_out: int = 0
    frames_out: int = 0

    @property
    def events(self) -> int:
        return self.events_by_handler + self.events_by_worker

    @property
    def amplification(self) -> float:
        return self.bytes_out / self.bytes_in if self.bytes_in else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=600, help="events the game holds (600)")
    parser.add_argument("--frames", type=int, default=10, help="resume frames in the storm (10)")
    args = parser.parse_args()
    from bench.rain import start_stack

    workdir = Path(tempfile.mkdtemp(prefix="rewardgate-bench-resume-"))
    print(f"starting DynamoDB Local and moto (logs in {workdir}) ...", file=sys.stderr)
    ddb, moto = start_stack(workdir)
    report = sys.stdout
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            return run(args, report)
    finally:
        moto.stop()
        ddb.stop()


def run(args: argparse.Namespace, out: Any) -> int:
    import boto3
    from chalice.test import Client

    import app as chalice_app
    from chalicelib.clients import queue_url, sqs
    from chalicelib.live import config as live_config
    from chalicelib.live import gateway
    from chalicelib.play import apps, ingest, keys
    from chalicelib.play.config import play_settings
    from chalicelib.play.models import LiveEventIn, PlayAppPut
    from chalicelib.queues import LIVE
    from chalicelib.routes import live as live_routes
    from chalicelib.secrets import put_secret_json
    from rewardgate_ops.lambda_events import LocalLambdaContext, deliver_batch, websocket_event

    outbox = Outbox()
    gateway.post, gateway.close = outbox.post, outbox.close  # type: ignore[assignment]
    live_routes.CONNECT_PUSH_DELAY_S = 0
    put_secret_json(play_settings().key_secret, keys.new_master_secret())
    app_id = 880_024
    apps.put_app(app_id, PlayAppPut(name="bench", share_bp=5000, interactive_gift_ids=[1], sandbox=True,
                                    limits={"events": 100_000, "start": 100_000, "heartbeat": 100_000}))
    key = keys.new_app_key(app_id)
    keys.put_app_key(key)
    apps.set_access_key_id(app_id, key.access_key_id)
    client = Client(chalice_app.app, stage_name="local", project_dir=str(ROOT))
    from tests.openlive_client import ChaliceTransport, OpenLiveClient

    play = OpenLiveClient(ChaliceTransport(client), app_id, key.access_key_id, key.access_key_secret)
    room = 9_024_000
    code = json.loads(client.http.post("/v1/play/anchors/9024/code", headers={"Content-Type": "application/json"},
                                       body=json.dumps({"room_id": room})).body)["code"]
    started = play.start(code)["data"]
    auth_body = started["websocket_info"]["auth_body"]
    for start in range(0, args.events, 100):
        batch = [LiveEventIn.model_validate({"cmd": "LIVE_OPEN_PLATFORM_DM", "data": {
            "msg_id": uuid.uuid4().hex, "open_id": str(uuid.uuid4()), "uname": "viewer", "uface": "",
            "msg": f"message {n} " + "x" * 40, "dm_type": 0, "timestamp": 0, "fans_medal_level": 0}})
            for n in range(start, min(args.events, start + 100))]
        results = ingest.ingest(room, ingest.parse_events(room, batch, True), True)
        assert {r.status for r in results} == {"appended"}, results

    url = queue_url(LIVE.name)
    arn = sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def drain() -> None:
        while True:
            got = deliver_batch(sqs(), url, arn, live_routes.live_push, LIVE.batch_size, timeout_s=30,
                                function_name="live_push", failure_visibility_s=0)
            if got.received:
                continue
            attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed",
                "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            if not any(int(v) for v in attributes.values()):
                return

    def storm(mode: str, frames_per_minute: int, replay_max_events: int) -> Figures:
        os.environ.update({"RG_LIVE_FRAMES_PER_MINUTE": str(frames_per_minute),
                           "RG_LIVE_REPLAY_MAX_EVENTS": str(replay_max_events)})
        live_config.reset()
        connection_id = uuid.uuid4().hex[:14] + "="
        connect = websocket_event("$connect", connection_id, query={"auth_body": auth_body}, headers={"Host": "b"})
        assert chalice_app.on_ws_connect(connect, LocalLambdaContext("websocket_connect", 600))["statusCode"] == 200
        drain()  # the offline inbox: the client is now at the head
        figures = Figures(mode)
        outbox.frames[connection_id] = outbox.bytes[connection_id] = 0
        outbox.seqs[connection_id] = []
        frame = json.dumps({"op": "resume", "after_seq": 0})
        for _ in range(args.frames):
            event = websocket_event("$default", connection_id, body=frame)
            chalice_app.on_ws_message(event, LocalLambdaContext("websocket_message", 29))
            figures.frames_in += 1
            figures.bytes_in += len(frame.encode())
        figures.events_by_handler = len(outbox.seqs[connection_id])
        drain()
        seqs = outbox.seqs[connection_id]
        figures.events_by_worker = len(seqs) - figures.events_by_handler
        figures.bytes_out, figures.frames_out = outbox.bytes[connection_id], outbox.frames[connection_id]
        figures.refused = outbox.errors[connection_id]
        last_replay = seqs[max(i for i, s in enumerate(seqs) if s == 1):]
        assert sorted(set(last_replay)) == list(range(1, args.events + 1)), f"{mode}: the client missed events"
        return figures

    base = live_config.load({})  # the defaults
    unbounded = storm("unbounded", 10**9, 10**9)
    bounded = storm("bounded", base.frames_per_minute, base.replay_max_events)

    print(f"resume storm: one connection, {args.frames} x {{\"op\": \"resume\", \"after_seq\": 0}} over a stream "
          f"of {args.events} events", file=out)
    print(f"bounded settings: RG_LIVE_FRAMES_PER_MINUTE={base.frames_per_minute} "
          f"RG_LIVE_REPLAY_MAX_EVENTS={base.replay_max_events}", file=out)
    print(f"{'mode':<10} {'frames in':>9} {'bytes in':>8} {'refused':>7} {'events by handler':>17} {'by worker':>9} "
          f"{'events re-sent':>14} {'frames out':>10} {'bytes out':>10} {'out/in':>8}", file=out)
    for f in (unbounded, bounded):
        print(f"{f.mode:<10} {f.frames_in:>9} {f.bytes_in:>8} {f.refused:>7} {f.events_by_handler:>17} "
              f"{f.events_by_worker:>9} {f.events:>14} {f.frames_out:>10} {f.bytes_out:>10} {f.amplification:>8.0f}",
              file=out)
    print(f"bounded / unbounded: events re-sent {bounded.events / unbounded.events:.3f}, bytes out "
          f"{bounded.bytes_out / unbounded.bytes_out:.3f}, events re-sent inside $default "
          f"{bounded.events_by_handler / unbounded.events_by_handler:.3f}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
