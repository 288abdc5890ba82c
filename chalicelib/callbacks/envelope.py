"""The outer JSON of a callback: `{"TimeStamp", "Nonce", "Encrypt", "MsgSignature"}`, checked field by field.

TimeStamp and Nonce may arrive as JSON numbers; the platform signs their decimal text as written, so
numbers are kept as their literal text (`1700000000.50` stays `1700000000.50`, never `1700000000.5`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import InvalidField, InvalidJson, PayloadTooLarge

FIELDS = ("TimeStamp", "Nonce", "Encrypt", "MsgSignature")
MAX_FIELD_CHARS = {"TimeStamp": 32, "Nonce": 128, "MsgSignature": 128}
_SECONDS = re.compile(r"[0-9]{1,12}")


class _NumberText(str):
    """A JSON number kept as the exact text it was written with."""


@dataclass(frozen=True)
class Envelope:
    """The four signed fields of one callback, as text."""

    timestamp: str
    nonce: str
    encrypt: str
    msg_signature: str

    @property
    def timestamp_s(self) -> int:
        """TimeStamp as whole seconds since the epoch."""
        return int(self.timestamp)


def _load(raw: bytes | str) -> Any:
    try:
        return json.loads(raw, parse_int=_NumberText, parse_float=_NumberText)
    except RecursionError as exc:
        # CPython's decoder recurses once per nesting level; a 10 000-deep array must not kill the function.
        raise InvalidJson("request body is nested too deeply") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidJson("request body is not valid JSON") from exc


def _text(body: dict[str, Any], field: str, numbers_allowed: bool) -> str:
    value = body.get(field)
    if value is None:
        raise InvalidField(field, "is required")
    if isinstance(value, _NumberText):
        if not numbers_allowed:
            raise InvalidField(field, "must be a string")
        return str(value)
    if not isinstance(value, str):
        raise InvalidField(field, "must be a string or a number" if numbers_allowed else "must be a string")
    if value == "":
        raise InvalidField(field, "must not be empty")
    limit = MAX_FIELD_CHARS.get(field)
    if limit is not None and len(value) > limit:
        raise InvalidField(field, f"must be at most {limit} characters")
    return str(value)


def parse_envelope(raw: bytes | str | None, max_bytes: int) -> Envelope:
    """Check size, JSON shape and each field of a callback body, in that order."""
    if raw is not None and len(raw) > max_bytes:
        raise PayloadTooLarge(f"request body exceeds {max_bytes} bytes", limit_bytes=max_bytes)
    if raw is None or raw in (b"", ""):
        raise InvalidJson("request body is empty; expected a JSON object")
    body = _load(raw)
    if not isinstance(body, dict):
        raise InvalidJson("request body must be a JSON object")
    timestamp = _text(body, "TimeStamp", numbers_allowed=True)
    nonce = _text(body, "Nonce", numbers_allowed=True)
    encrypt = _text(body, "Encrypt", numbers_allowed=False)
    msg_signature = _text(body, "MsgSignature", numbers_allowed=False)
    if not _SECONDS.fullmatch(timestamp):
        raise InvalidField("TimeStamp", "must be whole seconds since the epoch")
    return Envelope(timestamp=timestamp, nonce=nonce, encrypt=encrypt, msg_signature=msg_signature)
