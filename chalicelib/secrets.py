"""Secrets: tp app callback credentials and the reward-token signing key, from Secrets Manager.

In AWS they live in Secrets Manager (`rewardgate/{stage}/...`); locally the stack seeds moto's
Secrets Manager from a generated, git-ignored file. Reads go through Powertools' `SecretsProvider`,
which caches each value for `max_age` seconds: a rotated key is picked up within that time without a
redeploy, and a hot Lambda does not call Secrets Manager per request.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from chalicelib.clients import secretsmanager
from chalicelib.errors import StorageUnavailable
from chalicelib.settings import settings

CACHE_S = 300
# Unknown tp app ids are remembered briefly so a flood of forged ids does not become a flood of
# Secrets Manager calls (which are billed and throttled).
MISS_CACHE_S = 30

PLATFORMS = ("douyin", "wechat")

_provider: SecretsProvider | None = None
_lock = threading.Lock()
_misses: dict[str, float] = {}


@dataclass(frozen=True)
class TpAppCredentials:
    """What the platform console shows for one tp app: token, EncodingAESKey(s), profile."""

    tp_app_id: str
    token: str
    aes_key: str
    platform: str
    previous_aes_key: str | None = None
    receiver_id: str | None = None

    @property
    def expected_receiver_id(self) -> str:
        """The id the platform appends to every plaintext: the tp app id unless configured otherwise."""
        return self.receiver_id or self.tp_app_id

    def to_json(self) -> str:
        """Serialized form stored in Secrets Manager."""
        return json.dumps(asdict(self), sort_keys=True)


def _secrets() -> SecretsProvider:
    global _provider
    if _provider is None:
        with _lock:
            if _provider is None:
                _provider = SecretsProvider(boto3_client=secretsmanager())
    return _provider


def _not_found(exc: GetParameterError) -> bool:
    return "ResourceNotFoundException" in str(exc) or "ResourceNotFound" in repr(exc.__cause__)


def get_secret_json(name: str, max_age: int = CACHE_S) -> dict[str, Any] | None:
    """A JSON secret by name, cached; None when the secret does not exist."""
    missed_at = _misses.get(name)
    if missed_at is not None and time.monotonic() - missed_at < MISS_CACHE_S:
        return None
    try:
        value = _secrets().get(name, max_age=max_age, transform="json")
    except GetParameterError as exc:
        if _not_found(exc):
            _misses[name] = time.monotonic()
            return None
        raise StorageUnavailable("secrets store unavailable") from exc
    _misses.pop(name, None)
    return value  # type: ignore[return-value]


def put_secret_json(name: str, value: dict[str, Any]) -> None:
    """Create or replace a JSON secret (operator tooling; the functions only read)."""
    client = secretsmanager()
    body = json.dumps(value, sort_keys=True)
    try:
        client.put_secret_value(SecretId=name, SecretString=body)
    except client.exceptions.ResourceNotFoundException:
        client.create_secret(Name=name, SecretString=body)
    forget(name)


def forget(name: str | None = None) -> None:
    """Drop cached values (one secret, or all) so the next read goes to Secrets Manager."""
    if name is None:
        _misses.clear()
        _secrets().clear_cache()
    else:
        _misses.pop(name, None)
        # Powertools has no per-key eviction; clearing everything is cheap and rare.
        _secrets().clear_cache()


def reset() -> None:
    """Forget the provider and every cached value (after the Secrets Manager endpoint moved)."""
    global _provider
    with _lock:
        _provider = None
        _misses.clear()


def get_tp_app(tp_app_id: str) -> TpAppCredentials | None:
    """Credentials of one tp app, or None if it is not configured."""
    value = get_secret_json(settings().tp_app_secret(tp_app_id))
    if value is None:
        return None
    return TpAppCredentials(**value)


def put_tp_app(credentials: TpAppCredentials) -> None:
    """Store (or rotate) a tp app's credentials."""
    if credentials.platform not in PLATFORMS:
        raise ValueError(f"platform must be one of {PLATFORMS}")
    put_secret_json(settings().tp_app_secret(credentials.tp_app_id), json.loads(credentials.to_json()))
