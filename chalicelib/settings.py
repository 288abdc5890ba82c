"""Deployment settings, read once from the environment.

Every value has a default that fits the local stack, so tests and `make run` need to set only the
endpoints; a deployed stage must name its payout provider (`payout_provider_setting`). A value that cannot
be right raises `ValueError` naming the variable when settings load. Settings are cached on first use:
`chalice.test.Client` swaps `os.environ` for a copy on every call, and code running in other threads must
not observe a half-swapped environment.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_STAGE = "local"

# Payout providers `RG_PAYOUT_PROVIDER` may name. `fake` moves no money: only the local stage (which the
# tests run on) may use it, and it is that stage's default; every other stage must name its provider, and
# `none` refuses withdrawals (503 payout_unavailable) before anything is debited.
FAKE_PROVIDER = "fake"
NO_PROVIDER = "none"
PAYOUT_PROVIDERS = (FAKE_PROVIDER, NO_PROVIDER)


def stage_name(env: Mapping[str, str] | None = None) -> str:
    """The deployment stage that names every table, queue and secret (`rewardgate-{stage}-...`)."""
    return (os.environ if env is None else env).get("RG_STAGE", DEFAULT_STAGE)


def resource_name(logical: str, stage: str | None = None) -> str:
    """Physical name of a table or queue: `rewardgate-{stage}-{logical}`."""
    return f"rewardgate-{stage or stage_name()}-{logical}"


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int | None = None) -> int:
    """An integer setting from `env` (`default` when unset or empty); a clear error naming it otherwise."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ValueError(f"environment variable {name} must be at least {minimum}, got {value}")
    return value


def payout_provider_setting(env: Mapping[str, str], stage: str) -> str:
    """`RG_PAYOUT_PROVIDER`, checked: a known provider, `fake` only on the local stage, named on every other."""
    raw = env.get("RG_PAYOUT_PROVIDER", "")
    allowed = ", ".join(PAYOUT_PROVIDERS)
    if raw == "":
        if stage == DEFAULT_STAGE:
            return FAKE_PROVIDER
        raise ValueError(f"environment variable RG_PAYOUT_PROVIDER must be set on stage {stage!r} "
                         f"(one of: {allowed}; {FAKE_PROVIDER} only on the {DEFAULT_STAGE} stage)")
    if raw not in PAYOUT_PROVIDERS:
        raise ValueError(f"environment variable RG_PAYOUT_PROVIDER must be one of: {allowed}; got {raw!r}")
    if raw == FAKE_PROVIDER and stage != DEFAULT_STAGE:
        raise ValueError(f"environment variable RG_PAYOUT_PROVIDER={FAKE_PROVIDER} is allowed only on the "
                         f"{DEFAULT_STAGE} stage, not on {stage!r} (it marks withdrawals paid with no money moving)")
    return raw


@dataclass(frozen=True)
class Settings:
    """What one deployment is configured with; see docs/reference/configuration.md."""

    stage: str
    region: str
    # Callback gateway
    callback_max_body_bytes: int
    callback_max_skew_s: int
    event_ttl_days: int
    received_sla_s: int
    # Rewards
    app_id: str
    hour_buckets: int
    distributed_shards: int
    config_cache_s: int
    accepted_sla_s: int
    api_instances: int
    reconcile_grace_s: int
    grant_retry_horizon_s: int
    payout_provider: str
    # Secrets
    secret_prefix: str
    # Deadlines and timeouts (docs/explanation/timeouts.md)
    request_limit_s: int = 29
    aws_connect_timeout_s: int = 1
    aws_read_timeout_s: int = 5
    aws_max_attempts: int = 2
    # Payouts: an unresolved payout (PROCESSING, answer lost) older than this is alarmed and reported
    payout_unresolved_alarm_s: int = 900
    # The activities play bills are credited in (internal money: no public route may name them). Read here, not in
    # chalicelib.play.config, because the rewards slice refuses them and must not import play.
    bill_activities: tuple[str, str] = ("play-bills", "play-bills-sandbox")

    @property
    def reward_token_secret(self) -> str:
        """Secrets Manager name of the reward-token Ed25519 signing key."""
        return f"{self.secret_prefix}/reward-token-key"

    def tp_app_secret(self, tp_app_id: str) -> str:
        """Secrets Manager name holding one tp app's callback credentials."""
        return f"{self.secret_prefix}/tp-apps/{tp_app_id}"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from the environment (or `env`) now, uncached; `settings()` is the cached accessor."""
    env = os.environ if env is None else env
    stage = stage_name(env)
    return Settings(
        stage=stage,
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        callback_max_body_bytes=env_int(env, "RG_CALLBACK_MAX_BODY_BYTES", 64 * 1024),
        callback_max_skew_s=env_int(env, "RG_CALLBACK_MAX_SKEW_S", 300),
        event_ttl_days=env_int(env, "RG_EVENT_TTL_DAYS", 7),
        received_sla_s=env_int(env, "RG_RECEIVED_SLA_S", 120),
        app_id=env.get("RG_APP_ID", "rewardgate"),
        hour_buckets=env_int(env, "RG_HOUR_BUCKETS", 16),
        distributed_shards=env_int(env, "RG_DISTRIBUTED_SHARDS", 8),
        config_cache_s=env_int(env, "RG_CONFIG_CACHE_S", 5),
        accepted_sla_s=env_int(env, "RG_ACCEPTED_SLA_S", 600),
        api_instances=max(1, env_int(env, "RG_API_INSTANCES", 1)),
        reconcile_grace_s=env_int(env, "RG_RECONCILE_GRACE_S", 300),
        grant_retry_horizon_s=env_int(env, "RG_GRANT_RETRY_HORIZON_S", 86_400, minimum=0),
        payout_provider=payout_provider_setting(env, stage),
        secret_prefix=env.get("RG_SECRET_PREFIX", f"rewardgate/{stage}"),
        request_limit_s=env_int(env, "RG_REQUEST_LIMIT_S", 29, minimum=1),
        aws_connect_timeout_s=env_int(env, "RG_AWS_CONNECT_TIMEOUT_S", 1, minimum=1),
        aws_read_timeout_s=env_int(env, "RG_AWS_READ_TIMEOUT_S", 5, minimum=1),
        aws_max_attempts=env_int(env, "RG_AWS_MAX_ATTEMPTS", 2, minimum=1),
        payout_unresolved_alarm_s=env_int(env, "RG_PAYOUT_UNRESOLVED_ALARM_S", 900, minimum=60),
        bill_activities=bill_activities(env),
    )


def bill_activities(env: Mapping[str, str]) -> tuple[str, str]:
    """The activities live and sandbox play apps' bills are credited in (RG_PLAY_BILL_ACTIVITY,
    RG_PLAY_SANDBOX_BILL_ACTIVITY): one reader for the play slice, which credits them, and the rewards slice,
    which refuses them on every public route."""
    return (env.get("RG_PLAY_BILL_ACTIVITY", "play-bills"),
            env.get("RG_PLAY_SANDBOX_BILL_ACTIVITY", "play-bills-sandbox"))


@functools.cache
def settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return load_settings()


def reset_settings() -> None:
    """Forget cached settings (tests that change the environment call this)."""
    settings.cache_clear()
