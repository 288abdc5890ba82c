"""Interactive play under real concurrency on DynamoDB Local: one game per room, a gapless stream, gifts settled
once whatever the redeliveries, limits shared by every instance. Figures are printed."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

from chalicelib.play import apps, bills, security, stream
from chalicelib.play import reconcile as play_reconcile
from chalicelib.play.settlement import day_of
from tests.concurrency_support import run_together
from tests.play_support import (
    INTERACTIVE_GIFT,
    clock_at,
    danmaku,
    direct_client,
    gift,
    ingest_direct,
    install_play_key,
    make_anchor,
    make_app,
    start_game,
)

THREADS = 32
PER_THREAD = 10


@pytest.fixture(scope="module", autouse=True)
def _play_key(aws_stack):
    install_play_key()




def stored(game_id: str) -> list[stream.StreamEvent]:
    return list(stream.scan_from(game_id, 1))


def test_two_concurrent_starts_on_one_room__one_game(client):
    rounds, same_app_games, cross = 12, [], []
    for _ in range(rounds):
        # GIVEN one room and two starts released together, by the same app
        app, anchor = make_app(client), make_anchor(client)
        answers = run_together(2, lambda _i, a=app, c=anchor.code: direct_client(a).start(c))
        same_app_games.append({a["data"]["game_info"]["game_id"] for a in answers if a["code"] == 0})
        # AND by two apps
        first, second, room = make_app(client), make_app(client), make_anchor(client)
        answers = run_together(2, lambda i, r=room.code, pair=(first, second): direct_client(pair[i]).start(r))
        cross.append(sorted(a["code"] for a in answers))
    print(f"\nconcurrent starts: {rounds} rounds same app -> games per room {[len(g) for g in same_app_games]}; "
          f"two apps -> codes {cross}")
    # THEN the same app always got one game (both calls answered with it); two apps: one game, one 7002
    assert all(len(games) == 1 for games in same_app_games)
    assert cross == [[0, 7002]] * rounds


def test_32_threads_inject_into_one_game__seq_1_to_n_no_gap_no_duplicate(client):
    app, anchor = make_app(client), make_anchor(client)
    game_id = start_game(client, app, anchor)
    sent: dict[int, list[str]] = {}
    pulled: list[tuple[int, str]] = []
    stop = threading.Event()
    reader_problems: list[str] = []

    def reader() -> None:
        # A play pulling while the room fills: every page must continue exactly where the last ended.
        play, after = direct_client(app), 0
        while True:
            page = play.events(game_id, after_seq=after)["data"]
            seqs = [e["seq"] for e in page["events"]]
            if seqs != list(range(after + 1, after + 1 + len(seqs))):
                reader_problems.append(f"after {after}: {seqs[:5]}")
            pulled.extend((e["seq"], e["data"]["msg_id"]) for e in page["events"])
            after = page["next_seq"] - 1
            if stop.is_set() and not seqs:
                return
            time.sleep(0.01)

    pulling = threading.Thread(target=reader)
    pulling.start()

    def inject(i: int) -> None:
        sent[i] = []
        for n in range(PER_THREAD):
            message = gift(price=100 + n) if n % 3 == 0 else danmaku(f"t{i}-{n}")
            (result,) = ingest_direct(anchor.room_id, [message])
            assert result.status == "appended", result
            sent[i].append(message["data"]["msg_id"])

    started = time.monotonic()
    run_together(THREADS, inject)
    elapsed = time.monotonic() - started
    stop.set()
    pulling.join(timeout=60)
    events = stored(game_id)
    total = THREADS * PER_THREAD
    seqs = [e.seq for e in events]
    msg_ids = Counter(e.msg_id for e in events)
    print(f"\n{THREADS} threads x {PER_THREAD} events into one game: stored seq {seqs[0]}..{seqs[-1]} "
          f"({len(seqs)} items), gaps {total - len(set(seqs))}, duplicate msg_ids "
          f"{sum(c - 1 for c in msg_ids.values())}, skips {sum(e.kind == 'skip' for e in events)}, "
          f"{total / elapsed:.0f} events/s; reader pulled {len(pulled)} in order")
    assert seqs == list(range(1, total + 1))
    assert {e.kind for e in events} == {"event"}
    assert sorted(msg_ids) == sorted(m for ids in sent.values() for m in ids) and set(msg_ids.values()) == {1}
    # AND each thread's own events kept their order within the stream
    position = {e.msg_id: e.seq for e in events}
    assert all([position[m] for m in ids] == sorted(position[m] for m in ids) for ids in sent.values())
    assert reader_problems == []
    assert pulled == [(e.seq, e.msg_id) for e in events]


def test_each_gift_redelivered_1_to_3_times_concurrently__settled_once_matching_an_independent_model(client):
    app, anchor = make_app(client, share_bp=3333, gift_ids=(INTERACTIVE_GIFT, 31040)), make_anchor(client)
    game_id = start_game(client, app, anchor)
    rng = random.Random(11)
    gifts = [gift(gift_id=rng.choice([INTERACTIVE_GIFT, 31040, 1]), price=rng.randint(100, 50_000),
                  num=rng.randint(1, 9), paid=rng.random() > 0.1) for _ in range(120)]
    deliveries = [g for g in gifts for _ in range(rng.randint(1, 3))]
    rng.shuffle(deliveries)
    chunks = [deliveries[i::8] for i in range(8)]

    def deliver(i: int) -> list:
        out = []
        for start in range(0, len(chunks[i]), 3):
            out += ingest_direct(anchor.room_id, chunks[i][start:start + 3])
        return out

    results = [r for part in run_together(8, deliver) for r in part]
    statuses = Counter(r.status for r in results)
    events = [e for e in stored(game_id) if e.kind == "event"]
    # THEN every gift is in the stream exactly once, whatever the redeliveries
    assert Counter(e.msg_id for e in events) == Counter({g["data"]["msg_id"]: 1 for g in gifts})
    assert statuses["appended"] == len(gifts) and statuses["duplicate"] == len(deliveries) - len(gifts)
    # AND the seqs stay gapless (a redelivery that raced its original left a skip, never a hole)
    assert [e.seq for e in stored(game_id)] == list(range(1, len(stored(game_id)) + 1))
    # AND the money equals the independent model: interactive, paid gifts only, 33.33 %, floor per gift
    counted = [g["data"] for g in gifts if g["data"]["paid"] and g["data"]["gift_id"] != 1]
    model_revenue = sum(d["price"] * d["gift_num"] for d in counted)
    model_share = sum(d["price"] * d["gift_num"] * 3333 // 10_000 for d in counted)
    view = bills.settlement_view(app.app_id, day_of(events[0].at_ms))
    print(f"\nredelivery: {len(gifts)} gifts sent {len(deliveries)} times by 8 threads -> {dict(statuses)}; "
          f"{len(counted)} settled, revenue {view.revenue} (model {model_revenue}), share {view.developer_share} "
          f"(model {model_share}); skips {sum(e.kind == 'skip' for e in stored(game_id))}")
    assert (view.gifts, view.revenue, view.developer_share) == (len(counted), model_revenue, model_share)
    hour = time.strftime("%Y%m%d%H", time.gmtime(events[0].at_ms / 1000))
    check = play_reconcile.check_app_hour(apps.get_app(app.app_id), hour)
    assert check.findings == [] and check.entries == len(counted)


def test_end_racing_injections__end_is_the_last_seq_and_nothing_follows(client):
    app, anchor = make_app(client), make_anchor(client)
    game_id = start_game(client, app, anchor)
    play = direct_client(app)

    def work(i: int):
        if i == 0:
            time.sleep(0.05)
            return play.end(game_id)["code"]
        return [ingest_direct(anchor.room_id, [danmaku(f"{i}-{n}")])[0].status for n in range(15)]

    outcomes = run_together(9, work)
    events = stored(game_id)
    assert outcomes[0] == 0
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].cmd == "LIVE_OPEN_PLATFORM_INTERACTION_END" and sum(e.kind == "end" for e in events) == 1
    appended = sum(s == "appended" for statuses in outcomes[1:] for s in statuses)
    assert appended == len(events) - 1 - sum(e.kind == "skip" for e in events)
    print(f"\nend racing 8 injectors: {appended} appended before the end, end at seq {events[-1].seq}, "
          f"{sum(s == 'no_game' for statuses in outcomes[1:] for s in statuses)} refused after it")


def test_rate_limit__shared_by_every_instance__exactly_the_limit_admitted(client, monkeypatch):
    with clock_at(monkeypatch, 1_950_000_000_000):
        app = make_app(client, limits={"heartbeat": 10})
        game_id = start_game(client, app, make_anchor(client))
        # WHEN 8 instances make 5 heartbeats each within the same second
        codes = run_together(8, lambda _i: [direct_client(app).heartbeat(game_id)["code"] for _ in range(5)])
    flat = Counter(code for per in codes for code in per)
    print(f"\n8 instances x 5 heartbeats, limit 10/s: {dict(flat)}; offences {security.ban_state(app.app_id).offences}")
    # THEN exactly 10 were served and the app was banned once
    assert flat == {0: 10, 4009: 30}
    assert security.ban_state(app.app_id).offences == 1
