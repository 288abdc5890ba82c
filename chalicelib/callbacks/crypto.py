"""The open platform's callback scheme, both directions: sorted-SHA1 signature and AES-256-CBC.

Pure functions, no I/O. The platform signs `sha1(sorted([token, timestamp, nonce, encrypt]))` and
encrypts `random(R) | uint32_be(len(msg)) | msg | receiver_id`, PKCS#7-padded to a 32-byte block
(not AES's 16: a 16-byte unpadder refuses every message whose pad value is above 16), with
`key = b64decode(EncodingAESKey + "=")` and `IV = key[:16]`. R is 32 on Douyin and 16 on the
WeChat-style profile.

The signature is checked before anything is decrypted, so padding and length failures are only ever
observable by someone who already holds the token: there is no padding oracle to probe. Every failure
raises `CallbackRejected` with a reason meant for the log, never for the caller.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from chalicelib.errors import CallbackRejected
from chalicelib.secrets import TpAppCredentials

BLOCK_BYTES = 32
RANDOM_PREFIX_BYTES = {"douyin": 32, "wechat": 16}
_LENGTH = struct.Struct(">I")


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """The platform's MsgSignature: lowercase hex sha1 of the four strings sorted and joined."""
    joined = "".join(sorted([token, timestamp, nonce, encrypt]))
    return hashlib.sha1(joined.encode("utf-8")).hexdigest()  # noqa: S324 - the platform's scheme, not our choice


def signature_matches(expected: str, given: str) -> bool:
    """Constant-time, case-insensitive comparison of two hex signatures."""
    # compare_digest takes bytes of any content; str arguments must be ASCII, and `given` is hostile.
    return hmac.compare_digest(expected.lower().encode("utf-8"), given.lower().encode("utf-8"))


def aes_key_bytes(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key behind a 43-character EncodingAESKey (ValueError if it is not one)."""
    if len(encoding_aes_key) != 43:
        raise ValueError("EncodingAESKey must be 43 base64 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise ValueError("EncodingAESKey is not base64") from exc
    if len(key) != 32:
        raise ValueError("EncodingAESKey must decode to 32 bytes")
    return key


def random_prefix_bytes(platform: str) -> int:
    """How many random bytes the platform puts in front of each plaintext."""
    try:
        return RANDOM_PREFIX_BYTES[platform]
    except KeyError:
        raise ValueError(f"unknown platform {platform!r}; expected one of {sorted(RANDOM_PREFIX_BYTES)}") from None


def pad(data: bytes) -> bytes:
    """PKCS#7 to a 32-byte block: always 1..32 bytes of value n appended."""
    n = BLOCK_BYTES - len(data) % BLOCK_BYTES
    return data + bytes([n]) * n


def unpad(data: bytes) -> bytes:
    """Strip 32-byte-block PKCS#7; every pad byte must carry the pad value."""
    if not data or len(data) % BLOCK_BYTES:
        raise CallbackRejected("ciphertext_length")
    n = data[-1]
    if not 1 <= n <= BLOCK_BYTES or data[-n:] != bytes([n]) * n:
        raise CallbackRejected("padding")
    return data[:-n]


def encrypt_message(key: bytes, message: bytes, receiver_id: str, random_prefix: bytes) -> str:
    """Base64 ciphertext of one message, as the platform builds it."""
    plaintext = random_prefix + _LENGTH.pack(len(message)) + message + receiver_id.encode("utf-8")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(pad(plaintext)) + encryptor.finalize()).decode("ascii")


def decrypt_message(key: bytes, encrypt: str, receiver_id: str, prefix_bytes: int) -> bytes:
    """The message inside a ciphertext; strict about base64, padding, length field and receiver id."""
    try:
        ciphertext = base64.b64decode(encrypt, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CallbackRejected("base64") from exc
    # A 32-byte padded plaintext is a whole number of 32-byte blocks, and CBC keeps the length.
    if not ciphertext or len(ciphertext) % BLOCK_BYTES:
        raise CallbackRejected("ciphertext_length")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    body = unpad(decryptor.update(ciphertext) + decryptor.finalize())
    if len(body) < prefix_bytes + _LENGTH.size:
        raise CallbackRejected("length")
    (length,) = _LENGTH.unpack_from(body, prefix_bytes)
    start = prefix_bytes + _LENGTH.size
    if start + length > len(body):
        raise CallbackRejected("length")
    trailer = body[start + length:]
    if not hmac.compare_digest(trailer, receiver_id.encode("utf-8")):
        raise CallbackRejected("receiver_id")
    return body[start:start + length]


def build_callback(credentials: TpAppCredentials, message: bytes, *, timestamp: str, nonce: str,
                   random_prefix: bytes | None = None, aes_key: str | None = None) -> dict[str, str]:
    """The JSON body the platform POSTs for `message`: TimeStamp, Nonce, Encrypt, MsgSignature.

    `aes_key` overrides the credentials' current EncodingAESKey (to play a platform still on an old key).
    """
    prefix_len = random_prefix_bytes(credentials.platform)
    if random_prefix is None:
        random_prefix = os.urandom(prefix_len)
    if len(random_prefix) != prefix_len:
        raise ValueError(f"random_prefix must be {prefix_len} bytes for {credentials.platform}")
    key = aes_key_bytes(aes_key or credentials.aes_key)
    encrypt = encrypt_message(key, message, credentials.expected_receiver_id, random_prefix)
    return {
        "TimeStamp": timestamp,
        "Nonce": nonce,
        "Encrypt": encrypt,
        "MsgSignature": signature(credentials.token, timestamp, nonce, encrypt),
    }


def open_callback(credentials: TpAppCredentials, timestamp: str, nonce: str, encrypt: str,
                  msg_signature: str) -> bytes:
    """Verify the signature, then decrypt with the current key, falling back to the previous one."""
    expected = signature(credentials.token, timestamp, nonce, encrypt)
    if not signature_matches(expected, msg_signature):
        raise CallbackRejected("signature")
    prefix_len = random_prefix_bytes(credentials.platform)
    receiver_id = credentials.expected_receiver_id
    try:
        return decrypt_message(aes_key_bytes(credentials.aes_key), encrypt, receiver_id, prefix_len)
    except CallbackRejected as current_failure:
        if not credentials.previous_aes_key:
            raise
        try:
            return decrypt_message(aes_key_bytes(credentials.previous_aes_key), encrypt, receiver_id, prefix_len)
        except CallbackRejected as previous_failure:
            raise CallbackRejected(
                f"{current_failure.reason} (current key), {previous_failure.reason} (previous key)"
            ) from previous_failure
