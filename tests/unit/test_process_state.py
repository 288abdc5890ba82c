"""One reset forgets every per-process cache: what settings, clients, secrets, configuration, rate buckets, play
and live settings a warm process remembers."""

from __future__ import annotations

import pytest

from chalicelib import clients
from chalicelib.errors import RateLimited
from chalicelib.live.config import live_settings
from chalicelib.play.config import play_settings
from chalicelib.rewards import config_store, ratelimit
from chalicelib.settings import settings


def test_process_state_reset__after_env_changes_and_cached_state__every_cache_forgotten(monkeypatch):
    from chalicelib import process_state

    # GIVEN a warm process: settings read, a client built, a configuration cached, a rate bucket emptied
    process_state.reset()
    before = (settings().hour_buckets, play_settings().buckets, live_settings().chunk)
    clients.sqs()
    config_store._cache[("activity", "cached")] = (0.0, "a stale activity")
    ratelimit.acquire("user-1", 1)
    with pytest.raises(RateLimited):
        ratelimit.acquire("user-1", 1)
    # WHEN the environment changes and the one reset runs
    monkeypatch.setenv("RG_HOUR_BUCKETS", str(before[0] + 1))
    monkeypatch.setenv("RG_PLAY_BUCKETS", str(before[1] + 1))
    monkeypatch.setenv("RG_LIVE_CHUNK", str(before[2] + 1))
    process_state.reset()
    # THEN every cache reads afresh: the new settings, no client, no configuration, a full rate bucket
    assert (settings().hour_buckets, play_settings().buckets, live_settings().chunk) == tuple(v + 1 for v in before)
    assert clients._clients == {}
    assert config_store._cache == {}
    ratelimit.acquire("user-1", 1)
    monkeypatch.undo()
    process_state.reset()
