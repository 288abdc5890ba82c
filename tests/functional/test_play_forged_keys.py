"""Forged open-live calls: access key ids naming random app ids must not cost a DynamoDB read each.

The key id `rgak-{app_id}-{24 hex}` names its app, so a forger picks any app id; before the fix every such
request read the play-config table once (and, with the configuration cache on, left one cache entry per id).
"""

from __future__ import annotations

import json
import random

from chalicelib import secrets as secret_store
from chalicelib.play import apps, openlive
from tests.openlive_client import bili_headers
from tests.play_support import install_play_key, make_app, open_live


def forged_heartbeat(app_id: int) -> int:
    body = json.dumps({"game_id": "x"}).encode()
    headers = bili_headers(f"rgak-{app_id}-{'ab' * 12}", "not-the-secret", body)
    return openlive.call("heartbeat", {k.lower(): v for k, v in headers.items()}, body).body["code"]


def test_openlive__flood_of_forged_app_ids__bounded_table_reads_and_memory(client, monkeypatch):
    install_play_key()
    reads: list[int] = []
    real_load = apps._load
    monkeypatch.setattr(apps, "_load", lambda app_id: reads.append(app_id) or real_load(app_id))
    # a stopped clock: the lookup budget does not refill during the flood, so the bound is exact
    monkeypatch.setattr(apps, "_budget", secret_store._LookupBudget(secret_store.LOOKUPS_PER_S,
                                                                    secret_store.LOOKUP_BURST, clock=lambda: 0.0))
    # WHEN 400 forged calls name 400 random app ids
    codes = [forged_heartbeat(random.randint(10**13, 10**14)) for _ in range(400)]
    # THEN each is refused as a bad signature, at most a burst of them read the table, and memory stays bounded
    print(f"forged ids=400 play-config reads={len(reads)} remembered misses={apps.miss_cache_size()}")
    assert set(codes) == {4002}
    assert len(reads) <= secret_store.LOOKUP_BURST
    assert apps.miss_cache_size() <= apps.MISS_CACHE_MAX
    # AND a repeat of a forged id already seen costs nothing
    before = len(reads)
    forged_heartbeat(reads[0])
    assert len(reads) == before


def test_openlive__genuine_app__still_served_during_a_flood(client, monkeypatch):
    # GIVEN an app this process has already served, and an exhausted lookup budget (a flood in progress)
    install_play_key()
    app = make_app(client)
    play = open_live(client, app)
    assert play.heartbeat("no-such-game")["code"] == 7000
    monkeypatch.setattr(apps, "_budget", secret_store._LookupBudget(1, 1, clock=lambda: 0.0))
    apps._budget.take()
    # WHEN it calls again, THEN it is authenticated as before (its game is unknown: 7000, not 4002)
    assert play.heartbeat("no-such-game")["code"] == 7000
