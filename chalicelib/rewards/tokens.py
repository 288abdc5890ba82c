"""Reward tokens: the signed receipt a user sees the moment a grant is accepted.

A token is a **compact JWS** (RFC 7515) signed with **EdDSA over Ed25519** (RFC 8037): header
`{"alg": "EdDSA", "kid", "typ": "JWT"}`, payload the order's claims (`v` = 2; `open_time_ms` is when the
reward was won: the grant's `open_time_ms`, which chose the child activity). Any JOSE library verifies
it with the public JWKS at `GET /.well-known/jwks.json`. Signing and verifying use `joserfc`.
Ed25519 signatures are deterministic and the header and claims are serialised canonically, so
re-signing an order's facts yields the identical token: a repeated grant returns the original token
without storing it.

The former format, `base64url(claims JSON with v=1 and kid) "." base64url(signature)`, still verifies
for as long as its key is listed (`previous_public_keys`); new tokens are always JWS.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from chalicelib.errors import InvalidToken, StorageUnavailable
from chalicelib.secrets import get_secret_json
from chalicelib.settings import settings

# RFC 9864 prefers the fully specified "Ed25519" algorithm name; "EdDSA" (RFC 8037) is the one every
# JOSE library verifies today, so tokens use it and joserfc's advisory warning is silenced.
warnings.filterwarnings("ignore", message="EdDSA is deprecated")
ALG = "EdDSA"
TOKEN_VERSION = 1  # the legacy format
JWS_VERSION = 2
CLAIM_NAMES = (
    "v", "kid", "app_id", "activity_id", "sub_activity_id", "act_id", "scene_id", "award_type", "asset",
    "amount", "order_id", "open_time_ms", "rain_id", "stage",
)
JWS_CLAIM_NAMES = tuple(name for name in CLAIM_NAMES if name != "kid")
MAX_TOKEN_CHARS = 4096


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


def _canonical(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _okp(kid: str, key: Ed25519PrivateKey | Ed25519PublicKey) -> OKPKey:
    return OKPKey.import_key(key, parameters={"kid": kid})


def sign(claims: dict[str, Any], key: SigningKey) -> str:
    """A compact JWS for `claims` (which must not carry `kid`: the key's id goes in the header)."""
    payload = _canonical({**claims, "v": JWS_VERSION})
    header = {"alg": ALG, "kid": key.kid, "typ": "JWT"}
    # joserfc serialises the header in insertion order; the order above is fixed, so tokens are stable.
    return jws.serialize_compact(header, payload, _okp(key.kid, key.private_key), algorithms=[ALG])


def verify(token: Any, public_keys: dict[str, Ed25519PublicKey]) -> dict[str, Any]:
    """The claims (with `kid`) of a token that verifies with the key it names; `InvalidToken` otherwise."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
        raise InvalidToken(f"token must be a string of 1-{MAX_TOKEN_CHARS} characters")
    try:
        # Deeply nested JSON in a header or claims must be a bad token, not a RecursionError (a 500).
        if token.count(".") == 2:
            return _verify_jws(token, public_keys)
        if token.count(".") == 1:
            return _verify_legacy(token, public_keys)
    except RecursionError as exc:
        raise InvalidToken("token is nested too deeply") from exc
    raise InvalidToken("token must be a compact JWS (three base64url parts joined by '.')")


def _verify_jws(token: str, public_keys: dict[str, Ed25519PublicKey]) -> dict[str, Any]:
    try:
        header = json.loads(_unb64(token.split(".")[0]))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("token header is not valid base64url JSON") from exc
    if not isinstance(header, dict) or header.get("alg") != ALG:
        raise InvalidToken(f"token header must name alg {ALG}")
    kid = header.get("kid")
    public_key = public_keys.get(kid) if isinstance(kid, str) else None
    if public_key is None:
        raise InvalidToken("token was signed by an unknown key")
    try:
        payload = jws.deserialize_compact(token, _okp(kid, public_key), algorithms=[ALG]).payload
        claims = json.loads(payload)
    except (JoseError, ValueError) as exc:
        raise InvalidToken("token signature does not verify") from exc
    if not isinstance(claims, dict) or claims.get("v") != JWS_VERSION or set(claims) != set(JWS_CLAIM_NAMES):
        raise InvalidToken("token claims are not a reward token")
    return {**claims, "kid": kid}


def _verify_legacy(token: str, public_keys: dict[str, Ed25519PublicKey]) -> dict[str, Any]:
    body_part, signature_part = token.split(".")
    try:
        body, signature = _unb64(body_part), _unb64(signature_part)
        claims = json.loads(body)
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("token is not valid base64url JSON") from exc
    if not isinstance(claims, dict):
        raise InvalidToken("token claims must be a JSON object")
    kid = claims.get("kid")
    public_key = public_keys.get(kid) if isinstance(kid, str) else None
    if public_key is None:
        raise InvalidToken("token was signed by an unknown key")
    try:
        public_key.verify(signature, body)
    except InvalidSignature as exc:
        raise InvalidToken("token signature does not verify") from exc
    if claims.get("v") != TOKEN_VERSION or set(claims) != set(CLAIM_NAMES):
        raise InvalidToken("token claims are not a version-1 reward token")
    return claims


def sign_legacy(claims: dict[str, Any], key: SigningKey) -> str:
    """A token in the former format (no longer issued; kept so tests can prove old tokens still verify)."""
    body = _canonical({**claims, "kid": key.kid})
    return f"{_b64(body)}.{_b64(key.private_key.sign(body))}"


def claimed_kid(token: str) -> str | None:
    """The key id a token names, read without verifying anything (to pick the key to verify with)."""
    try:
        first = json.loads(_unb64(token.split(".")[0]))
    except (binascii.Error, ValueError, IndexError, RecursionError):
        return None
    kid = first.get("kid") if isinstance(first, dict) else None
    return kid if isinstance(kid, str) else None


def ordered_kids(key: SigningKey) -> list[str]:
    """Key ids, the current one first."""
    return [key.kid, *sorted(k for k in key.public_keys if k != key.kid)]


def jwks(key: SigningKey) -> dict[str, Any]:
    """The public JSON Web Key Set: every key tokens may verify with, current first."""
    return {"keys": [{**_okp(kid, key.public_keys[kid]).as_dict(private=False), "alg": ALG, "use": "sig"}
                     for kid in ordered_kids(key)]}


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
        # The secret's name is logged with the refusal, never put in the answer.
        raise StorageUnavailable("reward-token signing key is not configured", secret=settings().reward_token_secret)
    fingerprint = json.dumps(value, sort_keys=True)
    with _lock:
        if _cached is None or _cached[0] != fingerprint:
            _cached = (fingerprint, key_from_secret(value))
        return _cached[1]
