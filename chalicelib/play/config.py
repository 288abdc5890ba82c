"""Settings of interactive play, read once from the environment (defaults fit the local stack).

Kept apart from `chalicelib.settings` so that the play slice owns its knobs; names are `RG_PLAY_*`.
See docs/reference/configuration.md for what each one means.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.settings import bill_activities, env_int, settings

APIS = ("start", "heartbeat", "batchHeartbeat", "end", "events")
# Calls per second each app may make to each API before the security centre answers 4009 and bans it.
DEFAULT_RATE_LIMITS = {"start": 20, "heartbeat": 50, "batchHeartbeat": 10, "end": 20, "events": 50}


@dataclass(frozen=True)
class PlaySettings:
    """What one deployment's interactive play is configured with."""

    heartbeat_timeout_s: int
    room_cooldown_s: int
    signature_window_s: int
    stream_ttl_hours: int
    dedupe_ttl_days: int
    buckets: int
    auth_ttl_s: int
    wss_links: tuple[str, ...]
    bill_activity: str
    sandbox_bill_activity: str
    ban_base_s: int
    ban_cap_s: int
    ban_quiet_s: int

    @property
    def key_secret(self) -> str:
        """Secrets Manager name of the play master key (identity codes, open ids, game tokens)."""
        return f"{settings().secret_prefix}/play-key"

    def app_secret(self, app_id: int) -> str:
        """Secrets Manager name of one play app's access key."""
        return f"{settings().secret_prefix}/play-apps/{app_id}"


def load(env: Mapping[str, str] | None = None) -> PlaySettings:
    """Read the play settings now (uncached); `play_settings()` is the cached accessor."""
    env = os.environ if env is None else env
    links = tuple(link.strip() for link in env.get("RG_PLAY_WSS_LINKS", "ws://127.0.0.1:8003").split(",")
                  if link.strip())
    return PlaySettings(
        heartbeat_timeout_s=env_int(env, "RG_PLAY_HEARTBEAT_TIMEOUT_S", 60, minimum=1),
        room_cooldown_s=env_int(env, "RG_PLAY_ROOM_COOLDOWN_S", 10),
        signature_window_s=env_int(env, "RG_PLAY_SIGNATURE_WINDOW_S", 300, minimum=1),
        # Issue 13's offline inbox relies on a game's stream being kept at least a day.
        stream_ttl_hours=env_int(env, "RG_PLAY_STREAM_TTL_HOURS", 48, minimum=24),
        dedupe_ttl_days=env_int(env, "RG_PLAY_DEDUPE_DAYS", 7, minimum=1),
        buckets=env_int(env, "RG_PLAY_BUCKETS", 8, minimum=1),
        auth_ttl_s=env_int(env, "RG_PLAY_AUTH_TTL_S", 3600, minimum=60),
        wss_links=links,
        bill_activity=bill_activities(env)[0],
        sandbox_bill_activity=bill_activities(env)[1],
        ban_base_s=env_int(env, "RG_PLAY_BAN_BASE_S", 60, minimum=1),
        ban_cap_s=env_int(env, "RG_PLAY_BAN_CAP_S", 24 * 3600, minimum=1),
        ban_quiet_s=env_int(env, "RG_PLAY_BAN_QUIET_S", 3600, minimum=1),
    )


@functools.cache
def play_settings() -> PlaySettings:
    """The process-wide play settings."""
    return load()


def reset() -> None:
    """Forget cached settings (tests that change the environment)."""
    play_settings.cache_clear()
