"""docs/asyncapi.json against the live push protocol's code, both ways, so that neither can drift: every frame
the code builds validates against the document, every client frame the document shows is the operation the
code parses, the error codes are those the code sends, and the committed file is the generated one."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from chalicelib.edge import asyncapi
from chalicelib.live import protocol
from chalicelib.live.config import API_FRAME_BYTES

ROOT = Path(__file__).resolve().parents[2]
DOC = json.loads((ROOT / "docs" / "asyncapi.json").read_text())
GAME = "g-1"


@dataclass(frozen=True)
class Entry:
    seq: int
    cmd: str
    data: dict[str, Any]


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": DOC["components"]})


def _server_frame_errors(text: str) -> list[str]:
    value = json.loads(text)
    names = ["Batch"] if isinstance(value, list) else [{"event": "Event", "end": "End", "pong": "Pong",
                                                        "error": "Error"}[value["op"]]]
    return [e.message for name in names for e in _validator(name).iter_errors(value)]


def _messages(operation: str) -> dict[str, dict[str, Any]]:
    refs = [m["$ref"].rsplit("/", 1)[1] for m in DOC["operations"][operation]["messages"]]
    return {name: DOC["channels"]["live"]["messages"][name] for name in refs}


def test_asyncapi__committed_file__is_the_generated_document():
    assert DOC == json.loads(json.dumps(asyncapi.build()))
    assert DOC["asyncapi"] == "3.0.0"


def test_asyncapi__frames_the_code_builds__valid_against_the_document():
    # GIVEN a game's stream ending with its end event, packed by the code into frames of every size
    events = [Entry(1, "LIVE_OPEN_PLATFORM_DM", {"msg": "hi"}), Entry(2, "LIVE_OPEN_PLATFORM_SEND_GIFT", {"price": 1}),
              Entry(3, protocol.INTERACTION_END, {"game_id": GAME})]
    texts = [f.text for size in (60, 200, API_FRAME_BYTES) for f in protocol.frames(GAME, events, size)]
    texts += [protocol.pong_frame(3, 2, 0, 1000), *(protocol.error_frame(code, "why") for code in _codes_sent())]
    # THEN every one is a message the document describes
    assert {json.loads(t)["op"] if t[0] == "{" else "batch" for t in texts} == {"event", "end", "batch", "pong",
                                                                                "error"}
    assert [(t, e) for t in texts for e in _server_frame_errors(t)] == []


def test_asyncapi__document_describes_nothing_the_code_does_not_send():
    # a frame of the code with a field the document does not have (or without one it requires) is refused
    assert _server_frame_errors(json.dumps({"op": "pong", "sent_seq": 1, "acked_seq": 1, "ping_every_s": 300}))
    assert _server_frame_errors(json.dumps({"op": "event", "game_id": GAME, "seq": 1, "cmd": "X", "data": {},
                                            "extra": 1}))


def test_asyncapi__client_examples__parsed_by_the_code_as_their_operation():
    client = _messages("receiveClientFrames")
    # THEN the document's client operations are exactly the code's, each example parsed to its own op
    assert set(client) == set(protocol.CLIENT_OPS)
    for name, message in client.items():
        for example in message["examples"]:
            assert protocol.parse(json.dumps(example["payload"])).op == name
            assert list(_validator(message["title"]).iter_errors(example["payload"])) == []


@pytest.mark.parametrize("frame", [{"op": "ack"}, {"op": "ack", "seq": -1}, {"op": "resume", "after_seq": "3"}])
def test_asyncapi__frames_the_code_refuses__refused_by_the_document_too(frame):
    name = {"ack": "Ack", "resume": "Resume"}[frame["op"]]
    with pytest.raises(protocol.ProtocolError):
        protocol.parse(json.dumps(frame))
    assert list(_validator(name).iter_errors(frame)) != []


def _codes_sent() -> set[str]:
    """Every error code the live code sends, read from its source (constants resolved in `protocol`)."""
    found: set[str] = set()
    for path in ("chalicelib/live/protocol.py", "chalicelib/routes/live.py"):
        text = (ROOT / path).read_text()
        for raw in re.findall(r"(?:ProtocolError|error_frame)\(\s*(?:protocol\.)?([A-Z_]+|\"[a-z_]+\")\s*,", text):
            found.add(raw.strip('"') if raw.startswith('"') else getattr(protocol, raw))
    return found


def test_asyncapi__error_codes__exactly_those_the_code_sends():
    codes = set(DOC["components"]["schemas"]["Error"]["properties"]["code"]["enum"])
    assert codes == _codes_sent()
    assert len(codes) == 7  # rate_limited joined with the per-connection frame limit


def test_asyncapi__stated_limits__the_codes_limits():
    text = DOC["info"]["description"]
    assert f"at most {protocol.MAX_CLIENT_FRAME} bytes" in text and f"at most {API_FRAME_BYTES} bytes" in text
