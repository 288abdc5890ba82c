"""An open-live client written independently of chalicelib, the way Bilibili's SDKs sign (blivedm's
`clients/open_live.py`): it never imports rewardgate, so a mistake shared by server and client cannot hide.

Usable over real HTTP (`HttpTransport`, urllib) or through Chalice's test client (`ChaliceTransport`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Transport = Callable[[str, dict[str, str], bytes], tuple[int, dict[str, Any]]]


def bili_headers(access_key_id: str, access_key_secret: str, body: bytes, nonce: str | None = None,
                 timestamp: int | None = None) -> dict[str, str]:
    """The signed headers, as blivedm builds them (its dict happens to be in sorted order)."""
    headers = {
        "x-bili-accesskeyid": access_key_id,
        "x-bili-content-md5": hashlib.md5(body).hexdigest(),
        "x-bili-signature-method": "HMAC-SHA256",
        "x-bili-signature-nonce": nonce if nonce is not None else str(random.randint(0, 999_999_999_999)),
        "x-bili-signature-version": "1.0",
        "x-bili-timestamp": str(int(time.time()) if timestamp is None else timestamp),
    }
    str_to_sign = "\n".join(f"{key}:{value}" for key, value in headers.items())
    headers["Authorization"] = hmac.new(access_key_secret.encode(), str_to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Content-Type"] = "application/json"
    headers["Accept"] = "application/json"
    return headers


class HttpTransport:
    """POST over HTTP with urllib."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def __call__(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(self.base_url + path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


class ChaliceTransport:
    """POST through `chalice.test.Client`."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __call__(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        response = self.client.http.post(path, headers=headers, body=body)
        return response.status_code, json.loads(response.body)


@dataclass
class OpenLiveClient:
    """A developer's play, talking to the open-live API."""

    transport: Transport
    app_id: int
    access_key_id: str
    access_key_secret: str
    calls: list[tuple[str, int, int]] = field(default_factory=list)
    now_s: Callable[[], int] | None = None  # the clock timestamps are signed with (default: time.time)

    def request(self, path: str, body: dict[str, Any], **sign: Any) -> dict[str, Any]:
        """One signed POST; returns the envelope (the HTTP status is recorded in `calls`)."""
        raw = json.dumps(body).encode()
        if self.now_s is not None:
            sign.setdefault("timestamp", self.now_s())
        status, answer = self.transport(path, bili_headers(self.access_key_id, self.access_key_secret, raw, **sign),
                                        raw)
        self.calls.append((path, status, answer.get("code", -1)))
        return answer

    def start(self, code: str) -> dict[str, Any]:
        return self.request("/v2/app/start", {"code": code, "app_id": self.app_id})

    def heartbeat(self, game_id: str) -> dict[str, Any]:
        return self.request("/v2/app/heartbeat", {"game_id": game_id})

    def batch_heartbeat(self, game_ids: list[str]) -> dict[str, Any]:
        return self.request("/v2/app/batchHeartbeat", {"game_ids": game_ids})

    def end(self, game_id: str) -> dict[str, Any]:
        return self.request("/v2/app/end", {"app_id": self.app_id, "game_id": game_id})

    def events(self, game_id: str, after_seq: int = 0, limit: int = 100) -> dict[str, Any]:
        return self.request("/v2/app/events", {"game_id": game_id, "after_seq": after_seq, "limit": limit})

    def all_events(self, game_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
        """Pull until no more events come (`next_seq` is the seq of the next event; pass it minus one)."""
        events: list[dict[str, Any]] = []
        while True:
            answer = self.events(game_id, after_seq)
            assert answer["code"] == 0, answer
            page = answer["data"]["events"]
            events += page
            if not page:
                return events
            after_seq = answer["data"]["next_seq"] - 1
