"""Settings of live-event push delivery, read once from the environment (defaults fit the local stack).

Names are `RG_LIVE_*`; see docs/reference/configuration.md for what each one means.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.settings import env_int

# API Gateway's limits (WebSocket APIs): a frame is at most 32 KB, a connection lives at most 2 h and is
# closed after 10 minutes without a message.
API_FRAME_BYTES = 32 * 1024
CONNECTION_LIFE_MS = 2 * 3600 * 1000
IDLE_TIMEOUT_MS = 10 * 60 * 1000


@dataclass(frozen=True)
class LiveSettings:
    """What one deployment's push delivery is configured with."""

    connections_url: str  # the @connections management endpoint (API Gateway's, or the local stack's)
    chunk: int  # connections one push message (one worker) serves
    max_frame_bytes: int  # at most API_FRAME_BYTES
    post_timeout_s: int  # one post_to_connection's connect/read timeout
    max_connections_per_game: int  # connections one game's auth_body may hold at once (over it: 429 at $connect)
    frames_per_minute: int  # resume and ping frames one connection may send a minute (over it: refused)
    replay_max_events: int  # events a resume replays inside `$default`; the rest follows by the normal push
    connections_token: str | None = None  # the local stack's @connections answers only calls carrying it


def load(env: Mapping[str, str] | None = None) -> LiveSettings:
    """Read the live settings now (uncached); `live_settings()` is the cached accessor."""
    env = os.environ if env is None else env
    frame = env_int(env, "RG_LIVE_MAX_FRAME_BYTES", API_FRAME_BYTES, minimum=1024)
    if frame > API_FRAME_BYTES:
        raise ValueError(f"environment variable RG_LIVE_MAX_FRAME_BYTES must be at most {API_FRAME_BYTES}, got {frame}")
    return LiveSettings(
        connections_url=env.get("RG_LIVE_CONNECTIONS_URL", "http://127.0.0.1:8000").rstrip("/"),
        chunk=env_int(env, "RG_LIVE_CHUNK", 25, minimum=1),
        max_frame_bytes=frame,
        post_timeout_s=env_int(env, "RG_LIVE_POST_TIMEOUT_S", 3, minimum=1),
        max_connections_per_game=env_int(env, "RG_LIVE_MAX_CONNECTIONS_PER_GAME", 10, minimum=1),
        frames_per_minute=env_int(env, "RG_LIVE_FRAMES_PER_MINUTE", 6, minimum=1),
        replay_max_events=env_int(env, "RG_LIVE_REPLAY_MAX_EVENTS", 200, minimum=1),
        connections_token=env.get("RG_LIVE_CONNECTIONS_TOKEN") or None,
    )


@functools.cache
def live_settings() -> LiveSettings:
    """The process-wide live settings."""
    return load()


def reset() -> None:
    """Forget cached settings (tests that change the environment)."""
    live_settings.cache_clear()
