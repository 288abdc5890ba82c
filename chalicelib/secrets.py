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
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from chalicelib.clients import secretsmanager
from chalicelib.errors import StorageUnavailable
from chalicelib.settings import settings

CACHE_S = 300
# Unknown tp app ids are remembered briefly so a flood of forged ids does not become a flood of
# Secrets Manager calls (which are billed and throttled). The memory is bounded (least recently
# missed forgotten first), and lookups of names this process has never read are budgeted: at most
# LOOKUP_BURST at once and LOOKUPS_PER_S after that, per process. Beyond the budget an unseen tp app
# id is answered as unknown without a lookup (the platform retries a genuine callback later), so a
# flood of forged ids costs at most that many billed reads per second per API instance.
MISS_CACHE_S = 30
MISS_CACHE_MAX = 4096
LOOKUPS_PER_S = 5.0
LOOKUP_BURST = 50

PLATFORMS = ("douyin", "wechat")

_provider: SecretsProvider | None = None
_lock = threading.Lock()
_misses: OrderedDict[str, float] = OrderedDict()
_known: set[str] = set()


class LookupBudget:
    """A token bucket for Secrets Manager reads of names not read before (thread-safe)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.at = float(burst), clock()
        self.lock = threading.Lock()

    def take(self) -> bool:
        """Whether one more lookup may be made now (and count it)."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True


_LookupBudget = LookupBudget  # the name chalicelib.play.apps and its tests use

_budget = LookupBudget(LOOKUPS_PER_S, LOOKUP_BURST)


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


def _remember_miss(name: str) -> None:
    with _lock:
        _misses[name] = time.monotonic()
        _misses.move_to_end(name)
        while len(_misses) > MISS_CACHE_MAX:
            _misses.popitem(last=False)


def get_secret_json(name: str, max_age: int = CACHE_S, budgeted: bool = False,
                    fresh: bool = False) -> dict[str, Any] | None:
    """A JSON secret by name, cached; None when the secret does not exist.

    `budgeted`: a name this process never read counts against the lookup budget; over budget it is
    answered None without calling Secrets Manager (for names taken from untrusted input).
    `fresh`: read this one secret from Secrets Manager now and replace its cached value (no other).
    """
    missed_at = _misses.get(name)
    if missed_at is not None and time.monotonic() - missed_at < MISS_CACHE_S:
        return None
    if budgeted and name not in _known and not _budget.take():
        return None
    try:
        value = _secrets().get(name, max_age=max_age, transform="json", force_fetch=fresh)
    except GetParameterError as exc:
        if _not_found(exc):
            _remember_miss(name)
            return None
        raise StorageUnavailable("secrets store unavailable") from exc
    with _lock:
        _misses.pop(name, None)
        _known.add(name)
    return value  # type: ignore[return-value]


def miss_cache_size() -> int:
    """How many unknown names are remembered now (bounded by MISS_CACHE_MAX)."""
    return len(_misses)


def put_secret_json(name: str, value: dict[str, Any]) -> None:
    """Create or replace a JSON secret (operator tooling; the functions only read)."""
    client = secretsmanager()
    body = json.dumps(value, sort_keys=True)
    try:
        client.put_secret_value(SecretId=name, SecretString=body)
    except client.exceptions.ResourceNotFoundException:
        client.create_secret(Name=name, SecretString=body)
    forget(name)
    with _lock:
        _known.add(name)  # this process wrote it: reading it back is not a guess


def forget(name: str | None = None) -> None:
    """Drop cached values (one secret, or all) so the next read goes to Secrets Manager.

    Forgetting one name drops that name's entries only: every other cached secret stays, so nothing one
    caller does (a rotation seen, a key id the cache does not know) makes the others re-read theirs.
    """
    if name is None:
        with _lock:
            _misses.clear()
        _secrets().clear_cache()
        return
    provider = _secrets()
    with _lock:
        _misses.pop(name, None)
        # Powertools keys its cache by (name, transform, ...) and has no per-key eviction of its own.
        for key in [k for k in list(provider.store) if k and k[0] == name]:
            provider.store.pop(key, None)


def reset() -> None:
    """Forget the provider and every cached value (after the Secrets Manager endpoint moved)."""
    global _provider
    with _lock:
        _provider = None
        _misses.clear()
        _known.clear()
    _budget.tokens = float(_budget.burst)


def get_tp_app(tp_app_id: str) -> TpAppCredentials | None:
    """Credentials of one tp app, or None if it is not configured."""
    value = get_secret_json(settings().tp_app_secret(tp_app_id), budgeted=True)
    if value is None:
        return None
    return TpAppCredentials(**value)


def put_tp_app(credentials: TpAppCredentials) -> None:
    """Store (or rotate) a tp app's credentials."""
    if credentials.platform not in PLATFORMS:
        raise ValueError(f"platform must be one of {PLATFORMS}")
    put_secret_json(settings().tp_app_secret(credentials.tp_app_id), json.loads(credentials.to_json()))
