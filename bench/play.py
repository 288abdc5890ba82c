"""Interactive play on the embedded local stack: live events ingested/s and pulled/s, and DynamoDB write
units per gift settled, each beside a floor measured in the same run. Prints figures; asserts no timings.

Starts its own DynamoDB Local and moto, provisions every table from the deploy template, configures one
play app (all gifts interactive, so every gift settles) and one game per platform thread, then:

  ingest  `--threads` platform threads push `--events` gifts each (batches of `--batch`) through the real
          `POST /v1/play/rooms/{room}/events` handler: dedupe marker, seq allocation, stream item,
          settlement entry and hour counter, per event, in one transaction per batch;
          floor: the same markers and stream items written by one bare `TransactWriteItems` per batch
          (put-if-absent each: the least an exactly-once append writes; no reads, no allocation, no
          settlement), and, for
          reference, the stream items alone with plain `BatchWriteItem` (no exactly-once at all);
  pull    the same threads read every game's stream through the signed `POST /v2/app/events` (100 per
          call: signature, nonce, ban, rate limit, game read, stream query); floor: the bare consistent
          `Query` pages of the same items;
  units   write request units per gift settled by AWS's billing rules (`bench/meter.py`; DynamoDB Local's
          own ReturnConsumedCapacity undercounts transactions), by table and index, against the floor's
          units per stored event; and the same for a danmaku (nothing to settle).

Then it verifies: every stream gapless 1..N, every gift settled once, the day's totals equal to a model.

    .venv/bin/python bench/play.py                        # 4 threads x 500 gifts
    .venv/bin/python bench/play.py --threads 8 --events 1000 --batch 50
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
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import results  # noqa: E402 - after the path insert
from bench.results import add_json_argument  # noqa: E402

# Before chalicelib is imported: table and queue names are fixed at import time. Metrics are EMF lines on
# stdout (as in Lambda): the timed parts still write them, to /dev/null, so that they do not drown the report.
os.environ.update({"RG_STAGE": "local", "RG_LOG_LEVEL": "ERROR", "AWS_ACCESS_KEY_ID": "local",
                   "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"})
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)

GIFT_ID = 31039


def gift_message(room_id: int, n: int) -> dict[str, Any]:
    """A complete LIVE_OPEN_PLATFORM_SEND_GIFT (prices vary so the money check means something)."""
    return {"cmd": "LIVE_OPEN_PLATFORM_SEND_GIFT", "data": {
        "msg_id": uuid.uuid4().hex, "room_id": room_id, "open_id": str(uuid.uuid4()), "union_id": "",
        "uname": "viewer", "uface": "", "gift_id": GIFT_ID, "gift_name": "bench", "gift_num": 1 + n % 3,
        "price": 100 + (n * 37) % 5000, "r_price": 100, "paid": True, "timestamp": int(time.time()),
        "fans_medal_level": 0, "fans_medal_name": "", "fans_medal_wearing_status": False, "guard_level": 0,
        "combo_gift": False, "combo_info": {"combo_base_num": 0, "combo_count": 0, "combo_id": "", "combo_timeout": 0}}}


def danmaku_message(room_id: int) -> dict[str, Any]:
    return {"cmd": "LIVE_OPEN_PLATFORM_DM", "data": {
        "msg_id": uuid.uuid4().hex, "room_id": room_id, "open_id": str(uuid.uuid4()), "uname": "viewer",
        "uface": "", "msg": "bench danmaku", "dm_type": 0, "timestamp": int(time.time()), "fans_medal_level": 0}}


def run_threads(count: int, work: Any) -> float:
    """Run `work(i)` in `count` threads; the wall time from the first start to the last end."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # surfaced below: a benchmark must not report half a run as a figure
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4, help="platform threads, one room and game each (4)")
    parser.add_argument("--events", type=int, default=500, help="gifts pushed per thread (500)")
    parser.add_argument("--batch", type=int, default=25, help="events per push request (25, max 100)")
    parser.add_argument("--danmaku", type=int, default=200, help="danmaku pushed (one thread) for their units (200)")
    add_json_argument(parser)
    args = parser.parse_args()
    from bench.rain import start_stack

    workdir = Path(tempfile.mkdtemp(prefix="rewardgate-bench-play-"))
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
    from bench.capacity_rules import schemas_from_cloudformation
    from bench.meter import Meter, attach_rewardgate
    from bench.rain import isolate_requests_per_thread
    from chalicelib import clock
    from chalicelib.play import apps, bills, keys, stream
    from chalicelib.play.config import play_settings
    from chalicelib.play.models import PlayAppPut
    from chalicelib.play.settlement import day_of
    from chalicelib.play.tables import PlayGuardItem, PlayStreamItem
    from chalicelib.secrets import put_secret_json
    from infra.template import data_resources
    from tests.openlive_client import ChaliceTransport, OpenLiveClient

    put_secret_json(play_settings().key_secret, keys.new_master_secret())
    app_id = 880001
    apps.put_app(app_id, PlayAppPut(name="bench", share_bp=4321, interactive_gift_ids=[GIFT_ID],
                                    limits={"events": 100_000, "start": 100_000, "heartbeat": 100_000}))
    key = keys.new_app_key(app_id)
    keys.put_app_key(key)
    apps.set_access_key_id(app_id, key.access_key_id)
    isolate_requests_per_thread(chalice_app.app)
    clients = [Client(chalice_app.app, stage_name="local", project_dir=str(ROOT)) for _ in range(args.threads)]
    plays = [OpenLiveClient(ChaliceTransport(c), app_id, key.access_key_id, key.access_key_secret) for c in clients]

    def code_for(client: Any, anchor: int, room: int) -> str:
        answer = client.http.post(f"/v1/play/anchors/{anchor}/code", headers={"Content-Type": "application/json"},
                                  body=json.dumps({"room_id": room}))
        return json.loads(answer.body)["code"]

    rooms = [9_000_000 + i for i in range(args.threads + 1)]
    games = []
    for i, room in enumerate(rooms):
        started = plays[i % len(plays)].start(code_for(clients[0], 5_000_000 + i, room))
        games.append(started["data"]["game_info"]["game_id"])

    meter = Meter(schemas_from_cloudformation(data_resources("local")))
    attach_rewardgate(meter)

    latencies_ms: list[float] = []  # each timed push request (list.append is atomic under the GIL)

    def push(client: Any, room: int, messages: list[dict[str, Any]], timed: bool = False) -> None:
        began = time.perf_counter()
        answer = client.http.post(f"/v1/play/rooms/{room}/events", headers={"Content-Type": "application/json"},
                                  body=json.dumps({"events": messages}))
        if timed:
            latencies_ms.append(1000 * (time.perf_counter() - began))
        body = json.loads(answer.body)
        assert answer.status_code == 200 and {r["status"] for r in body["results"]} == {"appended"}, body

    planned = {i: [gift_message(rooms[i], n) for n in range(args.events)] for i in range(args.threads)}

    # Warm-up (untimed, unmetered scope): DynamoDB Local's JIT, connection pools, cached secrets and config.
    warm = [gift_message(rooms[-1], n) for n in range(args.batch)]
    with meter.scope("warmup"):
        push(clients[0], rooms[-1], warm)
        plays[0].events(games[-1])

    def ingest(i: int) -> None:
        for start in range(0, args.events, args.batch):
            push(clients[i], rooms[i], planned[i][start:start + args.batch], timed=True)

    with meter.scope("ingest"):
        ingest_s = run_threads(args.threads, ingest)
    gifts = args.threads * args.events
    with meter.scope("danmaku"):
        for start in range(0, args.danmaku, args.batch):
            push(clients[0], rooms[-1], [danmaku_message(rooms[-1]) for _ in range(min(args.batch,
                                                                                      args.danmaku - start))])

    # The floors: bare writes of the same items, each thread with a client made before the clock starts.
    floor_clients = [boto3.session.Session().client("dynamodb") for _ in range(args.threads)]
    for local in floor_clients:
        meter.attach(local)
    guard_table = PlayGuardItem.Meta.table_name
    stream_table = PlayStreamItem.Meta.table_name

    def stream_items(game: str, i: int, start: int, count: int) -> list[dict[str, Any]]:
        return [stream.event_item(game, start + n + 1, m["cmd"], m["data"], clock.now_ms(),
                                  msg_id=m["data"]["msg_id"]).serialize()
                for n, m in enumerate(planned[i][start:start + count])]

    def floor_transact(i: int) -> None:
        game = f"floor-tx-{uuid.uuid4().hex}"
        for start in range(0, args.events, args.batch):
            items = stream_items(game, i, start, args.batch)
            markers = [{"pk": {"S": f"floor#{uuid.uuid4().hex}"}, "sk": {"S": "m"}} for _ in items]
            # Put-if-absent, as exactly-once needs: a marker per msg_id, a stream item per seq.
            floor_clients[i].transact_write_items(TransactItems=[
                *({"Put": {"TableName": guard_table, "Item": m, "ConditionExpression": "attribute_not_exists(pk)"}}
                  for m in markers),
                *({"Put": {"TableName": stream_table, "Item": item,
                           "ConditionExpression": "attribute_not_exists(seq)"}} for item in items)])

    def floor_batch(i: int) -> None:
        game = f"floor-bw-{uuid.uuid4().hex}"
        for start in range(0, args.events, 25):
            pending = {stream_table: [{"PutRequest": {"Item": item}} for item in stream_items(game, i, start, 25)]}
            while pending:
                pending = floor_clients[i].batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    with meter.scope("floor_ingest"):
        floor_ingest_s = run_threads(args.threads, floor_transact)
    with meter.scope("floor_batch"):
        floor_batch_s = run_threads(args.threads, floor_batch)

    # Pull: each thread reads its game through the signed API; floor: the bare consistent Query pages.
    pulled: dict[int, list[int]] = {}

    def pull(i: int) -> None:
        seqs, after = [], 0
        while True:
            answer = plays[i].events(games[i], after_seq=after)
            assert answer["code"] == 0, answer
            page = answer["data"]["events"]
            if not page:
                break
            seqs += [e["seq"] for e in page]
            after = answer["data"]["next_seq"] - 1
        pulled[i] = seqs

    with meter.scope("pull"):
        pull_s = run_threads(args.threads, pull)

    def floor_pull(i: int) -> None:
        local = floor_clients[i]
        start = None
        while True:
            kwargs = {"ExclusiveStartKey": start} if start else {}
            page = local.query(TableName=PlayStreamItem.Meta.table_name, ConsistentRead=True, Limit=100,
                               KeyConditionExpression="game_id = :g", ExpressionAttributeValues={
                                   ":g": {"S": games[i]}}, **kwargs)
            start = page.get("LastEvaluatedKey")
            if not start:
                break

    floor_pull_s = run_threads(args.threads, floor_pull)

    # Verify: gapless streams, each gift once, money equal to the model.
    problems = []
    for i in range(args.threads):
        if pulled[i] != list(range(1, args.events + 1)):
            problems.append(f"game {i}: pulled {len(pulled[i])} seqs, not 1..{args.events}")
    settled = [m["data"] for ms in [*planned.values(), warm] for m in ms]
    model_revenue = sum(d["price"] * d["gift_num"] for d in settled)
    model_share = sum(d["price"] * d["gift_num"] * 4321 // 10_000 for d in settled)
    view = bills.settlement_view(app_id, day_of(clock.now_ms()))
    if (view.gifts, view.revenue, view.developer_share) != (len(settled), model_revenue, model_share):
        problems.append(f"day figures {view.gifts}/{view.revenue}/{view.developer_share} differ from the model "
                        f"{len(settled)}/{model_revenue}/{model_share}")
    usage = meter.usage("ingest")
    dm_usage = meter.usage("danmaku")
    floor_usage = meter.usage("floor_ingest")
    pull_usage = meter.usage("pull")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    batch_usage = meter.usage("floor_batch")
    lines = [
        f"play bench: {args.threads} platform threads x {args.events} gifts (batches of {args.batch}), one game "
        f"each; {os.cpu_count()} CPUs, load average {load}; DynamoDB Local + moto, in-process handlers",
        f"ingested: {gifts / ingest_s:7.0f} events/s | floor, bare transaction of the same markers and stream "
        f"items: {gifts / floor_ingest_s:5.0f}/s, ratio {floor_ingest_s / ingest_s:.2f} | reference, "
        f"BatchWriteItem of the stream items: {gifts / floor_batch_s:.0f}/s",
        f"pulled:   {gifts / pull_s:7.0f} events/s | floor, bare consistent Query pages of 100: "
        f"{gifts / floor_pull_s:5.0f}/s, ratio {floor_pull_s / pull_s:.2f}",
        f"write units per gift settled: {usage.wru / gifts:.2f} | floor (bare transaction): "
        f"{floor_usage.wru / gifts:.2f}, ratio {usage.wru / floor_usage.wru:.2f} | reference (BatchWriteItem): "
        f"{batch_usage.wru / gifts:.2f}",
        *(f"    {target:<36} {units / gifts:6.2f}" for target, units in sorted(usage.wru_by.items())),
        f"read units per gift ingested: {usage.rru / gifts:.2f}; DynamoDB requests per gift: "
        f"{usage.dynamodb_requests / gifts:.2f} ({usage.cancelled_transactions} cancelled transactions)",
        f"write units per danmaku (nothing to settle): {dm_usage.wru / args.danmaku:.2f}",
        f"pull: read units per event pulled {pull_usage.rru / gifts:.3f}, write units per event pulled "
        f"{pull_usage.wru / gifts:.3f} (each call: nonce put + rate-window ADD)",
        f"DynamoDB write cost per million gifts settled (on-demand list price $0.625/M WRU): "
        f"${usage.wru / gifts * 0.625:.2f}",
        f"verify: streams gapless 1..{args.events}, day's gifts/revenue/share equal to the model "
        f"({view.gifts} gifts incl. {len(warm)} warm-up, share {view.developer_share}): "
        f"{'OK' if not problems else 'FAILED'}",
        *(f"  {problem}" for problem in problems),
    ]
    out.write("\n".join(lines) + "\n")
    results.write(args.json, "play", {"threads": args.threads, "events": args.events, "batch": args.batch,
                                      "danmaku": args.danmaku}, {
        "ingest_events_per_s": gifts / ingest_s, "floor_ingest_events_per_s": gifts / floor_ingest_s,
        "pull_events_per_s": gifts / pull_s, "floor_pull_events_per_s": gifts / floor_pull_s,
        "push_requests": len(latencies_ms), "push_latency_ms_p50": results.percentile(latencies_ms, 50),
        "push_latency_ms_p99": results.percentile(latencies_ms, 99),
        "wru_per_gift": usage.wru / gifts, "wru_per_gift_by_table": {t: u / gifts for t, u in usage.wru_by.items()},
        "usd_per_million_gifts_dynamodb_writes": usage.wru / gifts * 0.625, "verified": not problems})
    return 0 if not problems else 1

if __name__ == "__main__":
    sys.exit(main())
