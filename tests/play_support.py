"""Factories and drivers for the interactive-play tests: play apps with access keys, anchors, live events."""

from __future__ import annotations

import contextlib
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chalice.test import Client

from chalicelib import clock
from chalicelib.play import apps, keys
from chalicelib.play.config import play_settings
from chalicelib.secrets import put_secret_json
from tests.openlive_client import ChaliceTransport, OpenLiveClient
from tests.rewards_support import call

INTERACTIVE_GIFT = 31039
OTHER_GIFT = 1
_used_ids: set[int] = set()


def install_play_key() -> None:
    """Put a fresh play master key into (moto's) Secrets Manager."""
    put_secret_json(play_settings().key_secret, keys.new_master_secret())
    keys.reset()


def new_id() -> int:
    """A fresh positive id (apps, anchors, rooms) no other test uses."""
    while True:
        value = random.randint(10**8, 10**12)
        if value not in _used_ids:
            _used_ids.add(value)
            return value


@dataclass(frozen=True)
class PlayApp:
    """A configured play app and its access key."""

    app_id: int
    key: keys.AppKey


def make_app(client: Client, *, share_bp: int = 5000, gift_ids: tuple[int, ...] = (INTERACTIVE_GIFT,),
             sandbox: bool = False, limits: dict[str, int] | None = None) -> PlayApp:
    """Configure a play app through the admin API and issue its access key (as `play-app add` does)."""
    app_id = new_id()
    body: dict[str, Any] = {"name": f"play {app_id}", "share_bp": share_bp, "interactive_gift_ids": list(gift_ids),
                            "sandbox": sandbox}
    if limits is not None:
        body["limits"] = limits
    status, answer = call(client, "PUT", f"/v1/admin/play-apps/{app_id}", body)
    assert status == 200, answer
    key = keys.new_app_key(app_id)
    keys.put_app_key(key)
    apps.set_access_key_id(app_id, key.access_key_id)
    return PlayApp(app_id, key)


def open_live(client: Client, app: PlayApp) -> OpenLiveClient:
    """The independent open-live client, through the Chalice test client."""
    return OpenLiveClient(ChaliceTransport(client), app.app_id, app.key.access_key_id, app.key.access_key_secret,
                          now_s=lambda: clock.now_ms() // 1000)


@dataclass(frozen=True)
class Anchor:
    """A streamer with a room and an identity code."""

    anchor_id: int
    room_id: int
    code: str


def make_anchor(client: Client, uname: str = "anchor") -> Anchor:
    """A new anchor, its room and its identity code (through the API)."""
    anchor_id, room_id = new_id(), new_id()
    status, body = call(client, "POST", f"/v1/play/anchors/{anchor_id}/code", {"room_id": room_id, "uname": uname})
    assert status == 200, body
    return Anchor(anchor_id, room_id, body["code"])


def gift(gift_id: int = INTERACTIVE_GIFT, price: int = 1000, num: int = 1, paid: bool = True,
         msg_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """A complete LIVE_OPEN_PLATFORM_SEND_GIFT message."""
    return {"cmd": "LIVE_OPEN_PLATFORM_SEND_GIFT", "data": {
        "msg_id": msg_id or uuid.uuid4().hex, "open_id": str(uuid.uuid4()), "uname": "viewer", "uface": "",
        "gift_id": gift_id, "gift_name": "gift", "gift_num": num, "price": price, "r_price": price, "paid": paid,
        "timestamp": clock.now_ms() // 1000, "fans_medal_level": 0, "guard_level": 0, **extra}}


def danmaku(text: str = "hello", msg_id: str | None = None) -> dict[str, Any]:
    """A complete LIVE_OPEN_PLATFORM_DM message."""
    return {"cmd": "LIVE_OPEN_PLATFORM_DM", "data": {
        "msg_id": msg_id or uuid.uuid4().hex, "open_id": str(uuid.uuid4()), "uname": "viewer", "uface": "",
        "msg": text, "dm_type": 0, "timestamp": clock.now_ms() // 1000, "fans_medal_level": 0}}


def post_events(client: Client, room_id: int, events: list[dict[str, Any]], test: bool = False) -> tuple[int, Any]:
    """The platform pushes live messages for a room (batch form)."""
    return call(client, "POST", f"/v1/play/rooms/{room_id}/events", {"events": events, "test": test})


def raw_call(client: Client, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """One POST with exactly these headers and body bytes."""
    response = client.http.post(path, headers=headers, body=body)
    return response.status_code, json.loads(response.body)


def start_game(client: Client, app: PlayApp, anchor: Anchor) -> str:
    """Start a game through the open-live API; returns its id."""
    answer = open_live(client, app).start(anchor.code)
    assert answer["code"] == 0, answer
    return answer["data"]["game_info"]["game_id"]


@contextlib.contextmanager
def clock_at(monkeypatch: Any, now_ms: int) -> Iterator[list[int]]:
    """Freeze `chalicelib.clock.now_ms` at a value the test can move (`box[0] = ...`)."""
    box = [now_ms]
    monkeypatch.setattr(clock, "now_ms", lambda: box[0])
    yield box


def envelope_codes(answers: list[dict[str, Any]]) -> list[int]:
    """The `code` of each envelope."""
    return [a["code"] for a in answers]


def dumps(value: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(value, separators=(",", ":")).encode()


class DirectTransport:
    """The open-live pipeline called in-process (`openlive.call`), safe from many threads at once.

    Chalice's test client keeps the current request on the shared app object, so concurrent tests call the
    same pipeline the route calls, with the headers lower-cased as API Gateway's are case-insensitive.
    """

    def __call__(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        from chalicelib.play import openlive

        answer = openlive.call(path.rsplit("/", 1)[-1], {k.lower(): v for k, v in headers.items()}, body)
        return answer.status, answer.body


def direct_client(app: PlayApp) -> OpenLiveClient:
    """The independent open-live client over `DirectTransport`."""
    return OpenLiveClient(DirectTransport(), app.app_id, app.key.access_key_id, app.key.access_key_secret,
                          now_s=lambda: clock.now_ms() // 1000)


def ingest_direct(room_id: int, messages: list[dict[str, Any]], test: bool = False) -> list[Any]:
    """The platform's push, in-process (what `POST /v1/play/rooms/{room}/events` does), thread-safe."""
    from chalicelib.play import ingest
    from chalicelib.play.models import LiveEventIn

    incoming = ingest.parse_events(room_id, [LiveEventIn.model_validate(m) for m in messages], test)
    return ingest.ingest(room_id, incoming, test)
