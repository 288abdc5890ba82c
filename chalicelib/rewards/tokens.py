"""Reward tokens: the signed receipt a user sees the moment a grant is accepted.

A token is `base64url(claims JSON) "." base64url(Ed25519 signature over those exact bytes)`. Anyone
holding the public key (`GET /v1/keys/reward-token`) can verify it offline. Ed25519 signatures are
deterministic, so re-signing an order's facts yields the identical token: a repeated grant returns
the original token without storing it.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from chalicelib.errors import InvalidToken, StorageUnavailable
from chalicelib.secrets import get_secret_json
from chalicelib.settings import settings

TOKEN_VERSION = 1
CLAIM_NAMES = (
    "v", "kid", "app_id", "activity_id", "sub_activity_id", "act_id", "scene_id", "award_type", "asset",
    "amount", "order_id", "open_time_ms", "rain_id", "stage",
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SigningKey:
    """The current Ed25519 signing key and the public keys tokens may still be verified with."""

    kid: str
    private_key: Ed25519PrivateKey
    public_keys: dict[str, Ed25519PublicKey]


def sign(claims: dict[str, Any], key: SigningKey) -> str:
    """A token for `claims` (which must not carry `kid`; the key's id is added)."""
    body = json.dumps({**claims, "kid": key.kid}, sort_keys=True, separators=(",", ":")).encode()
    return f"{_b64(body)}.{_b64(key.private_key.sign(body))}"


def verify(token: str, public_keys: dict[str, Ed25519PublicKey]) -> dict[str, Any]:
    """The claims of a token whose signature verifies with the key it names; `InvalidToken` otherwise."""
    if not isinstance(token, str) or token.count(".") != 1:
        raise InvalidToken("token must be two base64url parts joined by '.'")
    body_part, signature_part = token.split(".")
    try:
        body, signature = _unb64(body_part), _unb64(signature_part)
        claims = json.loads(body)
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("token is not valid base64url JSON") from exc
    if not isinstance(claims, dict):
        raise InvalidToken("token claims must be a JSON object")
    public_key = public_keys.get(claims.get("kid"))  # type: ignore[arg-type]
    if public_key is None:
        raise InvalidToken("token was signed by an unknown key")
    try:
        public_key.verify(signature, body)
    except InvalidSignature as exc:
        raise InvalidToken("token signature does not verify") from exc
    if claims.get("v") != TOKEN_VERSION or set(claims) != set(CLAIM_NAMES):
        raise InvalidToken("token claims are not a version-1 reward token")
    return claims


def claimed_kid(token: str) -> str | None:
    """The key id a token names, read without verifying anything (to pick the key to verify with)."""
    try:
        claims = json.loads(_unb64(token.split(".")[0]))
    except (binascii.Error, ValueError, IndexError):
        return None
    return claims.get("kid") if isinstance(claims, dict) else None


def rotated_secret_value(current: dict[str, Any], kid: str, keep_previous: int = 3) -> dict[str, Any]:
    """A new signing key whose secret still lists the retiring public keys, so issued tokens keep verifying."""
    retiring = key_from_secret(current)
    previous = [{"kid": retiring.kid, "public_key": public_key_b64(retiring.private_key.public_key())}]
    previous += [p for p in current.get("previous_public_keys", []) if p["kid"] != kid]
    return {**new_secret_value(kid), "previous_public_keys": previous[:keep_previous]}


def public_key_b64(public_key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key, base64url without padding."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return _b64(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key from its base64url raw form."""
    return Ed25519PublicKey.from_public_bytes(_unb64(text))


def key_from_secret(value: dict[str, Any]) -> SigningKey:
    """Build the signing key from the secret's JSON: `{kid, private_key, previous_public_keys?}`."""
    private_key = Ed25519PrivateKey.from_private_bytes(_unb64(value["private_key"].rstrip("=")))
    public_keys = {value["kid"]: private_key.public_key()}
    for previous in value.get("previous_public_keys", []):
        public_keys[previous["kid"]] = load_public_key(previous["public_key"])
    return SigningKey(kid=value["kid"], private_key=private_key, public_keys=public_keys)


def new_secret_value(kid: str) -> dict[str, Any]:
    """A freshly generated signing-key secret value (used by the local stack and by operators)."""
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return {"kid": kid, "private_key": _b64(raw)}


_lock = threading.Lock()
_cached: tuple[str, SigningKey] | None = None


def signing_key() -> SigningKey:
    """The deployment's signing key, read from Secrets Manager (cached alongside the secret)."""
    global _cached
    value = get_secret_json(settings().reward_token_secret)
    if value is None:
        raise StorageUnavailable("reward-token signing key is not configured", secret=settings().reward_token_secret)
    fingerprint = json.dumps(value, sort_keys=True)
    with _lock:
        if _cached is None or _cached[0] != fingerprint:
            _cached = (fingerprint, key_from_secret(value))
        return _cached[1]
