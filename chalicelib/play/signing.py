"""Bilibili's open-live request signing, as its SDKs do it. Pure: no I/O, no clock of its own.

The six `x-bili-*` headers, sorted by name, are joined as `name:value` with `\\n` (no trailing
newline); `Authorization` is the hex HMAC-SHA256 of that string under the app's access_key_secret.
`x-bili-content-md5` is the hex MD5 of the raw body, so the signature covers the body too.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.errors import ContentMd5Mismatch, SignatureInvalid, TimestampOutOfWindow

ACCESS_KEY_ID = "x-bili-accesskeyid"
CONTENT_MD5 = "x-bili-content-md5"
SIGNATURE_METHOD = "x-bili-signature-method"
SIGNATURE_NONCE = "x-bili-signature-nonce"
SIGNATURE_VERSION = "x-bili-signature-version"
TIMESTAMP = "x-bili-timestamp"
SIGNED_HEADERS = (ACCESS_KEY_ID, CONTENT_MD5, SIGNATURE_METHOD, SIGNATURE_NONCE, SIGNATURE_VERSION, TIMESTAMP)
AUTHORIZATION = "authorization"
METHOD = "HMAC-SHA256"
VERSION = "1.0"
MAX_HEADER_LEN = 128


def content_md5(body: bytes) -> str:
    """Hex MD5 of the body bytes, as `x-bili-content-md5` carries it."""
    return hashlib.md5(body).hexdigest()  # noqa: S324 - the platform's scheme, not a security hash here


def string_to_sign(headers: Mapping[str, str]) -> str:
    """The six signed headers, sorted by name, `name:value` joined with newlines."""
    return "\n".join(f"{name}:{headers[name]}" for name in sorted(SIGNED_HEADERS))


def signature(secret: str, headers: Mapping[str, str]) -> str:
    """Hex HMAC-SHA256 of the string to sign under the access key secret."""
    return hmac.new(secret.encode(), string_to_sign(headers).encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignedRequest:
    """The signing headers of one request (lower-case names), as received."""

    headers: Mapping[str, str]
    authorization: str

    @property
    def access_key_id(self) -> str:
        """Which access key signed it."""
        return self.headers[ACCESS_KEY_ID]

    @property
    def nonce(self) -> str:
        """The request's nonce."""
        return self.headers[SIGNATURE_NONCE]


def parse_headers(headers: Mapping[str, str]) -> SignedRequest:
    """The signing headers of a request; `SignatureInvalid` when one is missing or absurd.

    `headers` must be case-insensitive (Chalice's are) or already lower-case.
    """
    found: dict[str, str] = {}
    for name in (*SIGNED_HEADERS, AUTHORIZATION):
        value = headers.get(name)
        if value is None or value == "":
            raise SignatureInvalid(f"header {name} is missing")
        if len(value) > MAX_HEADER_LEN:
            raise SignatureInvalid(f"header {name} is too long")
        found[name] = value
    if found[SIGNATURE_METHOD].upper() != METHOD:
        raise SignatureInvalid(f"{SIGNATURE_METHOD} must be {METHOD}")
    if found[SIGNATURE_VERSION] != VERSION:
        raise SignatureInvalid(f"{SIGNATURE_VERSION} must be {VERSION}")
    authorization = found.pop(AUTHORIZATION)
    return SignedRequest(headers=found, authorization=authorization)


def check_timestamp(request: SignedRequest, now_s: int, window_s: int) -> None:
    """`TimestampOutOfWindow` unless the request's timestamp is within `window_s` of now, either way."""
    raw = request.headers[TIMESTAMP]
    if not (raw.isascii() and raw.isdigit()) or abs(int(raw) - now_s) > window_s:  # not "²" (int refuses it)
        raise TimestampOutOfWindow(f"{TIMESTAMP} must be unix seconds within {window_s} s of the server's time")


def check_body(request: SignedRequest, body: bytes) -> None:
    """`ContentMd5Mismatch` unless the signed MD5 is the body's."""
    if not hmac.compare_digest(request.headers[CONTENT_MD5].lower(), content_md5(body)):
        raise ContentMd5Mismatch(f"{CONTENT_MD5} is not the MD5 of the body")


def check_signature(request: SignedRequest, secret: str) -> None:
    """`SignatureInvalid` unless `Authorization` is the HMAC under `secret` (constant-time comparison)."""
    expected = signature(secret, request.headers)
    if not hmac.compare_digest(request.authorization.lower().encode(), expected.encode()):
        raise SignatureInvalid("signature does not verify")


def sign_headers(access_key_id: str, secret: str, body: bytes, nonce: str, timestamp_s: int) -> dict[str, str]:
    """Every header a signed request carries (for rewardgate's own tools and tests of the edge)."""
    headers = {
        ACCESS_KEY_ID: access_key_id,
        CONTENT_MD5: content_md5(body),
        SIGNATURE_METHOD: METHOD,
        SIGNATURE_NONCE: nonce,
        SIGNATURE_VERSION: VERSION,
        TIMESTAMP: str(timestamp_s),
    }
    return {**headers, "Authorization": signature(secret, headers), "Content-Type": "application/json",
            "Accept": "application/json"}
