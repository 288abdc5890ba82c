"""Every per-process cache, and the one reset that forgets them all.

A warm Lambda process keeps what it learned between invocations: settings, boto3 clients and queue URLs,
secrets and the misses it remembers, activity/scene/switch configuration, grant rate buckets, play and live
settings, play keys, the WebSocket management client. Whoever changes what those were built from (tests that
move endpoints or change the environment, the local stack, the CLI choosing its target) calls `reset()`, not
the modules' own resets one by one, so no cache is forgotten. Order matters: settings first, then what is built
from them.
"""

from __future__ import annotations


def reset() -> None:
    """Forget every per-process cache; the next use reads the environment and the backing services afresh."""
    from chalicelib import clients, secrets, settings
    from chalicelib.live import config as live_config
    from chalicelib.live import gateway
    from chalicelib.play import config as play_config
    from chalicelib.play import keys
    from chalicelib.rewards import config_store, ratelimit

    settings.reset_settings()
    play_config.reset()
    live_config.reset()
    clients.reset_clients()
    secrets.reset()  # its provider was built on the previous clients
    gateway.reset()
    keys.reset()
    config_store.invalidate()
    ratelimit.reset()
