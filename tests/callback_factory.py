"""Test-side platform double for the callback gateway: credentials, an independent encoder, helpers.

The encoder here is written from the wire-format description with `cryptography`'s own PKCS#7 padder
(256-bit block) and AES-CBC, not with `chalicelib.callbacks.crypto`, so the gateway is checked against
a second implementation of the scheme rather than against itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from chalicelib.secrets import TpAppCredentials
from tests.sqs_support import take_messages

PREFIX_BYTES = {"douyin": 32, "wechat": 16}


def fresh_id(prefix: str = "t") -> str:
    """A fresh identifier valid wherever rewardgate takes an id."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def new_aes_key() -> str:
    """A random 43-character EncodingAESKey."""
    return base64.b64encode(os.urandom(32)).decode("ascii").rstrip("=")


def new_credentials(platform: str = "douyin", *, tp_app_id: str | None = None,
                    previous_aes_key: str | None = None, aes_key: str | None = None) -> TpAppCredentials:
    """Credentials for a fresh tp app."""
    return TpAppCredentials(
        tp_app_id=tp_app_id or fresh_id("tp"),
        token=f"tok-{uuid.uuid4().hex}",
        aes_key=aes_key or new_aes_key(),
        platform=platform,
        previous_aes_key=previous_aes_key,
    )


def encrypt_like_platform(aes_key: str, message: bytes, receiver_id: str, prefix: bytes) -> str:
    """Encrypt as the platform does: AES-256-CBC, IV = key[:16], PKCS#7 over 32-byte blocks."""
    key = base64.b64decode(aes_key + "=")
    padder = padding.PKCS7(256).padder()
    plaintext = prefix + len(message).to_bytes(4, "big") + message + receiver_id.encode()
    plaintext = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plaintext) + encryptor.finalize()).decode("ascii")


def sign_like_platform(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """sha1 over the four strings sorted and concatenated."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def now_s() -> int:
    """Wall-clock seconds (what the platform puts in TimeStamp)."""
    return int(time.time())


def platform_body(credentials: TpAppCredentials, event: dict[str, Any] | bytes, *, timestamp: Any = None,
                  nonce: Any = None, aes_key: str | None = None, prefix: bytes | None = None) -> dict[str, Any]:
    """The JSON body the platform would POST for `event` (a dict, or raw message bytes)."""
    message = event if isinstance(event, bytes) else json.dumps(event, ensure_ascii=False).encode()
    ts = str(now_s()) if timestamp is None else timestamp
    nn = uuid.uuid4().hex[:10] if nonce is None else nonce
    encrypt = encrypt_like_platform(aes_key or credentials.aes_key, message, credentials.expected_receiver_id,
                                    prefix if prefix is not None else os.urandom(PREFIX_BYTES[credentials.platform]))
    return {"TimeStamp": ts, "Nonce": nn, "Encrypt": encrypt,
            "MsgSignature": sign_like_platform(credentials.token, str(ts), str(nn), encrypt)}


def event_id_of(body: dict[str, Any]) -> str:
    """The id the gateway must give this callback: sha256 hex of its Encrypt field."""
    return hashlib.sha256(body["Encrypt"].encode()).hexdigest()


def post(client: Any, tp_app_id: str, body: Any, channel: str = "events",
         content_type: str | None = "application/json") -> Any:
    """POST a callback body (dict → JSON, bytes/str as is) through the Chalice test client."""
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {"Content-Type": content_type} if content_type else {}
    return client.http.post(f"/callbacks/{tp_app_id}/{channel}", headers=headers, body=raw)


class EventsQueue:
    """The events queue on moto, drained through the real worker with Lambda's delivery semantics."""

    def __init__(self, handler: Callable[[dict[str, Any], Any], Any]) -> None:
        from chalicelib import clients
        from chalicelib.queues import EVENTS

        self.sqs = clients.sqs()
        self.url = clients.queue_url(EVENTS.name)
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]
        self.arn = attributes["QueueArn"]
        self.handler = handler
        self.delivered: list[str] = []  # event ids handed to the worker, in delivery order

    def _recording_handler(self, event: dict[str, Any], context: Any) -> Any:
        for record in event["Records"]:
            self.delivered.append(json.loads(record["body"]).get("event_id"))
        return self.handler(event, context)

    def drain(self, max_batches: int = 200) -> int:
        """Deliver batches until the queue is empty; return how many messages were delivered."""
        from rewardgate_ops.lambda_events import deliver_batch

        total = 0
        for _ in range(max_batches):
            delivery = deliver_batch(self.sqs, self.url, self.arn, self._recording_handler, 10,
                                     failure_visibility_s=0)
            if delivery.received == 0:
                return total
            total += delivery.received
        raise AssertionError(f"events queue still not empty after {max_batches} batches")

    def discard(self) -> int:
        """Delete every message without handing it to the worker."""
        return len(take_messages(self.url, self.sqs))

    def count(self, event_id: str) -> int:
        """How many times the worker was handed this event id."""
        return self.delivered.count(event_id)
