"""The push protocol's pure decisions: client frames, server frames, batching within the frame limit, advice."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.live import protocol
from chalicelib.live.config import CONNECTION_LIFE_MS, load


@dataclass(frozen=True)
class Ev:
    seq: int
    cmd: str
    data: dict[str, Any]


def test_parse__each_client_op():
    assert protocol.parse('{"op":"ack","seq":7}') == protocol.ClientOp("ack", 7)
    assert protocol.parse('{"op":"resume","after_seq":0}') == protocol.ClientOp("resume", 0)
    assert protocol.parse('{"op":"ping","extra":1}') == protocol.ClientOp("ping")


@pytest.mark.parametrize(("frame", "code"), [
    (None, "bad_frame"), (b'{"op":"ping"}', "bad_frame"), ("{", "bad_frame"), ('"ping"', "bad_frame"),
    ("[" * 100_000, "bad_frame"), ("{}", "invalid_field"), ('{"op":"ack","seq":1.5}', "invalid_field"),
    ('{"op":"resume"}', "invalid_field"), ('{"op":7}', "unknown_op"),
])
def test_parse__bad_frame__protocol_error_with_code(frame, code):
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.parse(frame)
    assert refused.value.code == code


def test_frames__one_event__an_object_with_the_issue_fields():
    (frame,) = protocol.frames("g1", [Ev(3, "LIVE_OPEN_PLATFORM_DM", {"msg": "hi"})], 32 * 1024)
    assert json.loads(frame.text) == {"op": "event", "game_id": "g1", "seq": 3, "cmd": "LIVE_OPEN_PLATFORM_DM",
                                      "data": {"msg": "hi"}}
    assert (frame.last_seq, frame.events) == (3, 1)


def test_frames__end_event__followed_by_end_op_in_the_same_frame():
    frames = protocol.frames("g1", [Ev(1, "X", {}), Ev(2, protocol.INTERACTION_END, {"game_id": "g1"})], 32 * 1024)
    assert len(frames) == 1
    assert [m["op"] for m in json.loads(frames[0].text)] == ["event", "event", "end"]


@given(sizes=st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=60),
       limit=st.integers(min_value=1024, max_value=8192))
def test_frames__any_events__in_order_each_frame_within_limit_and_contiguous(sizes, limit):
    events = [Ev(i + 1, "C", {"t": "é" * n}) for i, n in enumerate(sizes)]
    frames = protocol.frames("g", events, limit)
    seqs: list[int] = []
    for frame in frames:
        value = json.loads(frame.text)
        messages = value if isinstance(value, list) else [value]
        single = len(messages) == 1
        assert single or len(frame.text.encode()) <= limit  # only a lone oversized message may exceed it
        assert frame.last_seq == messages[-1]["seq"] and frame.events == len(messages)
        seqs += [m["seq"] for m in messages]
    assert seqs == [e.seq for e in events]


def test_reconnect_advice__before_the_two_hour_limit():
    assert protocol.reconnect_advice(0, 0) == {"reconnect_in_s": (CONNECTION_LIFE_MS - 300_000) // 1000,
                                              "ping_every_s": 300}
    assert protocol.reconnect_advice(0, CONNECTION_LIFE_MS)["reconnect_in_s"] == 0


def test_settings__frame_limit_above_api_gateway__refused():
    with pytest.raises(ValueError, match="RG_LIVE_MAX_FRAME_BYTES must be at most 32768"):
        load({"RG_LIVE_MAX_FRAME_BYTES": "40000"})
