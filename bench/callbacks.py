"""Callback gateway throughput on the embedded local stack; prints figures, asserts no timings.

Starts its own DynamoDB Local and moto server, then measures, in one process and one thread:

  handler  callbacks acknowledged per second through the real Chalice handler (chalice.test client,
           in-process): parse, secrets (cached), verify + decrypt, put-if-absent, SQS send, answer;
  floor    the same number of bare verify + decrypt operations, each followed by one DynamoDB Local
           conditional put of the same item and one SQS send, with plain boto3 and no app around it;

and their ratio. Callbacks are built (encrypted and signed) outside the timed sections, in chunks, so
their timestamps stay inside the gateway's window however large --n is; the two measurements
alternate chunk by chunk, and the events queue is emptied (untimed) between chunks.

    .venv/bin/python bench/callbacks.py --n 3000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import results  # noqa: E402 - after the path insert
from bench.results import add_json_argument  # noqa: E402

# Before chalicelib is imported: table and queue names are fixed at import time. Powertools metrics are off:
# in Lambda they are EMF documents in the log stream; here they would be one JSON line per request on stdout.
os.environ.update({"RG_STAGE": "local", "RG_LOG_LEVEL": "ERROR", "AWS_ACCESS_KEY_ID": "local",
                   "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
                   "POWERTOOLS_METRICS_DISABLED": "true"})
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)

CHUNK = 250


def empty(sqs, queue_url: str) -> None:
    """Receive and delete everything in the queue (PurgeQueue is allowed only once a minute)."""
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="callbacks per measurement (default 3000)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed callbacks before each measurement")
    add_json_argument(parser)
    args = parser.parse_args()

    import boto3

    from infra.provision import provision_queues, provision_tables
    from rewardgate_ops import services

    workdir = Path(tempfile.mkdtemp(prefix="rewardgate-bench-"))
    print(f"starting DynamoDB Local and moto (logs in {workdir}) ...", file=sys.stderr)
    ddb_service = services.start_dynamodb_local(services.free_port(), log_path=workdir / "dynamodb.log")
    moto_service = services.start_moto_server(services.free_port(), log_path=workdir / "moto.log")
    with services.running(ddb_service, moto_service):
        os.environ.update(services.endpoint_environment(ddb_service.endpoint, moto_service.endpoint))
        from chalicelib import clients, settings

        settings.reset_settings()
        clients.reset_clients()
        provision_tables(boto3.client("dynamodb"), "local")
        provision_queues(boto3.client("sqs"), "local")
        return _measure(args.n, args.warmup, args.json)


def _measure(n: int, warmup: int, json_path: Path | None = None) -> int:
    import base64
    import hashlib
    import uuid

    import boto3
    from chalice.test import Client

    from app import app
    from chalicelib.callbacks import crypto
    from chalicelib.callbacks.tables import EventRecord
    from chalicelib.queues import EVENTS
    from chalicelib.secrets import TpAppCredentials, put_tp_app
    from rewardgate_ops.sample_events import EVENT_NAMES, channel_of, sample_event

    credentials = TpAppCredentials(
        tp_app_id="ttbench0000001", token="bench-token", platform="douyin",
        aes_key=base64.b64encode(hashlib.sha256(b"bench").digest()).decode().rstrip("="),
    )
    put_tp_app(credentials)

    def callbacks(count: int) -> list[tuple[str, dict[str, str]]]:
        built = []
        for i in range(count):
            name = EVENT_NAMES[i % len(EVENT_NAMES)]
            event = sample_event(name) if name == "PUSH" else sample_event(
                name, AppId=f"tt{i % 97:04d}bench", TpAppId=credentials.tp_app_id)
            message = json.dumps(event, ensure_ascii=False).encode()
            body = crypto.build_callback(credentials, message, timestamp=str(int(time.time())),
                                         nonce=uuid.uuid4().hex[:10])
            built.append((channel_of(name), body))
        return built

    # --- the real handler ---------------------------------------------------------------------
    client = Client(app, stage_name="local", project_dir=str(ROOT))

    def post(channel: str, body: dict[str, str]) -> bool:
        answer = client.http.post(f"/callbacks/{credentials.tp_app_id}/{channel}",
                                  headers={"Content-Type": "application/json"}, body=json.dumps(body).encode())
        return answer.status_code == 200 and answer.body == b"success"

    # --- the floor: crypto + one conditional put + one send, plain boto3 ------------------------
    ddb = boto3.client("dynamodb")
    sqs = boto3.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=EVENTS.name)["QueueUrl"]
    table = EventRecord.Meta.table_name

    def floor_once(body: dict[str, str]) -> None:
        message = crypto.open_callback(credentials, body["TimeStamp"], body["Nonce"], body["Encrypt"],
                                       body["MsgSignature"])
        event_id = hashlib.sha256(body["Encrypt"].encode()).hexdigest()
        now_ms = int(time.time() * 1000)
        # The same attributes the gateway stores (so the same three indexes are maintained), built by hand.
        item = {
            "event_id": {"S": event_id}, "tp_app_id": {"S": credentials.tp_app_id}, "event_type": {"S": "X"},
            "payload": {"S": message.decode()}, "status": {"S": "RECEIVED"}, "channel": {"S": "events"},
            "received_at_ms": {"N": str(now_ms)}, "list_sk": {"S": f"{now_ms:013d}#{event_id}"},
            "tp_app_type": {"S": f"{credentials.tp_app_id}#X"}, "unapplied_bucket": {"S": event_id[0]},
            "due_at_ms": {"N": str(now_ms + 120_000)}, "sweep_attempts": {"N": "0"},
            "expires_at": {"N": str(now_ms // 1000 + 7 * 86400)},
        }
        ddb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(event_id)")
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"event_id": event_id}))

    # Warm both paths (JIT in DynamoDB Local, connection pools, the cached secret) before timing.
    for channel, body in callbacks(warmup):
        post(channel, body)
    for _, body in callbacks(warmup):
        floor_once(body)
    empty(sqs, queue_url)

    # The two measurements alternate chunk by chunk, so background load on a shared machine falls on
    # both alike instead of on whichever would have run second.
    handler_s = floor_s = crypto_s = 0.0
    handler_ok = done = 0
    chunks = (n + CHUNK - 1) // CHUNK
    for number in range(1, chunks + 1):
        size = min(CHUNK, n - done)
        for_handler, for_floor = callbacks(size), callbacks(size)

        def run_handler(batch=for_handler) -> float:
            nonlocal handler_ok
            began = time.perf_counter()
            for channel, body in batch:
                handler_ok += post(channel, body)
            return time.perf_counter() - began

        def run_floor(batch=for_floor) -> float:
            began = time.perf_counter()
            for _, body in batch:
                floor_once(body)
            return time.perf_counter() - began

        # moto's SendMessage gets slower as its queue grows (roughly linearly: ~8 ms at 300 messages,
        # ~30 ms at 1 800 on the machine this was written on). In production the worker keeps the queue
        # short, so the queue is emptied (untimed) before each timed part, and the parts take turns
        # going first, so that neither inherits the other's messages or its warm-up.
        timings = {}
        for part in (("handler", "floor") if number % 2 else ("floor", "handler")):
            empty(sqs, queue_url)
            timings[part] = run_handler() if part == "handler" else run_floor()
        chunk_handler_s, chunk_floor_s = timings["handler"], timings["floor"]
        began = time.perf_counter()
        for _, body in for_floor:
            crypto.open_callback(credentials, body["TimeStamp"], body["Nonce"], body["Encrypt"], body["MsgSignature"])
        crypto_s += time.perf_counter() - began
        handler_s += chunk_handler_s
        floor_s += chunk_floor_s
        done += size
        print(f"  chunk {number}/{chunks}: {done}/{n} done; this chunk handler {size / chunk_handler_s:.0f}/s, "
              f"floor {size / chunk_floor_s:.0f}/s", file=sys.stderr, flush=True)

    handler_rate = n / handler_s
    floor_rate = n / floor_s
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"callbacks: n={n} (all {len(EVENT_NAMES)} event types in turn), one thread, in-process; "
          f"{os.cpu_count()} CPUs, load average {load}")
    print(f"handler:   {handler_rate:8.0f} acknowledged/s  ({1000 * handler_s / n:.3f} ms each, "
          f"{handler_ok}/{n} answered success)")
    print(f"floor:     {floor_rate:8.0f} ops/s           ({1000 * floor_s / n:.3f} ms each: "
          f"verify+decrypt, conditional put, SQS send)")
    print(f"  of which verify+decrypt alone: {1000 * crypto_s / n:.3f} ms each ({n / crypto_s:.0f}/s)")
    print(f"ratio:     handler/floor = {handler_rate / floor_rate:.2f} "
          f"(the app costs {1000 * (handler_s - floor_s) / n:.3f} ms per callback over the floor)")
    results.write(json_path, "callbacks", {"n": n, "warmup": warmup}, {
        "handler_per_s": handler_rate, "floor_per_s": floor_rate, "handler_ms": 1000 * handler_s / n,
        "floor_ms": 1000 * floor_s / n, "crypto_ms": 1000 * crypto_s / n, "answered_success": handler_ok})
    return 0 if handler_ok == n else 1


if __name__ == "__main__":
    sys.exit(main())
