"""Identity codes, open ids and game tokens: keyed derivations from the play master key. Pure.

- An identity code is derived from (anchor id, generation) under a secret key, so the same code can be
  shown again until it is refreshed (generation + 1) without storing it; only its HMAC under a second
  key is stored, as the lookup key. 12 characters of Crockford base32 (60 bits).
- An `open_id` is per (app, anchor): a keyed hash shaped as a UUID, never the raw uid, so two apps
  cannot join their users.
- A game token (the `auth_body` a client presents to the push service) is
  `v1.base64url(claims JSON).base64url(HMAC-SHA256)`, carrying the game, app, room and expiry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Any

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 12
TOKEN_VERSION = "v1"  # noqa: S105 - a format version, not a secret


@dataclass(frozen=True)
class PlayKeys:
    """The purpose-specific keys derived from the master key (never used for two purposes)."""

    code: bytes
    code_lookup: bytes
    open_id: bytes
    game_token: bytes

    @classmethod
    def from_master(cls, master: bytes) -> PlayKeys:
        """Derive every purpose key from the 32-byte master key."""
        if len(master) < 32:
            raise ValueError("the play master key must be at least 32 bytes")

        def derive(purpose: str) -> bytes:
            return hmac.new(master, f"rewardgate/play/{purpose}".encode(), hashlib.sha256).digest()

        return cls(code=derive("code"), code_lookup=derive("code-lookup"), open_id=derive("open-id"),
                   game_token=derive("game-token"))


def identity_code(keys: PlayKeys, anchor_id: int, generation: int) -> str:
    """The anchor's identity code of this generation."""
    digest = hmac.new(keys.code, f"{anchor_id}:{generation}".encode(), hashlib.sha256).digest()
    number = int.from_bytes(digest[:8], "big") >> (64 - 5 * CODE_LENGTH)
    return "".join(CROCKFORD[(number >> (5 * i)) & 31] for i in reversed(range(CODE_LENGTH)))


def normalize_code(code: str) -> str | None:
    """A code as typed (case, spaces and dashes ignored, I/L read as 1, O as 0), or None if it cannot be one."""
    text = code.strip().upper().replace("-", "").replace(" ", "")
    text = text.translate(str.maketrans({"I": "1", "L": "1", "O": "0"}))
    if len(text) != CODE_LENGTH or any(ch not in CROCKFORD for ch in text):
        return None
    return text


def code_lookup(keys: PlayKeys, code: str) -> str:
    """What is stored for a (normalized) code: its HMAC, hex."""
    return hmac.new(keys.code_lookup, code.encode(), hashlib.sha256).hexdigest()


def open_id(keys: PlayKeys, app_id: int, uid: int) -> str:
    """A user's id as one app sees it (UUID-shaped, stable, unlinkable across apps)."""
    digest = hmac.new(keys.open_id, f"{app_id}:{uid}".encode(), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class InvalidGameToken(ValueError):
    """A game token is malformed, forged or expired (the WebSocket side refuses the connection)."""


def sign_game_token(keys: PlayKeys, game_id: str, app_id: int, room_id: int, expires_at_ms: int) -> str:
    """A short-lived token for connecting to one game's push stream."""
    claims = {"game_id": game_id, "app_id": app_id, "room_id": room_id, "exp_ms": expires_at_ms}
    body = _b64(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
    mac = hmac.new(keys.game_token, f"{TOKEN_VERSION}.{body}".encode(), hashlib.sha256).digest()
    return f"{TOKEN_VERSION}.{body}.{_b64(mac)}"


def verify_game_token(keys: PlayKeys, token: str, now_ms: int) -> dict[str, Any]:
    """The claims of a valid, unexpired game token; `InvalidGameToken` otherwise (what `$connect` calls)."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3 or parts[0] != TOKEN_VERSION:
        raise InvalidGameToken("not a game token")
    try:
        mac = _unb64(parts[2])
    except (binascii.Error, ValueError) as exc:
        raise InvalidGameToken("not a game token") from exc
    expected = hmac.new(keys.game_token, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise InvalidGameToken("game token signature does not verify")
    claims = json.loads(_unb64(parts[1]))
    if claims["exp_ms"] <= now_ms:
        raise InvalidGameToken("game token expired")
    return claims
