"""Field checks of the domain's own parsers (configuration documents from the CLI and from storage,
withdrawal and grant requests of direct callers); each failure names its field. The HTTP edge validates
requests against the pydantic models first (`chalicelib/edge`, `chalicelib/*/models.py`), reporting every
invalid field at once.

Identifiers are restricted to `[A-Za-z0-9.-]` so that the separators rewardgate uses to build keys
(`_` in order ids, `#` and `|` in table keys) can never occur inside a part: two different tuples can
then never produce the same key.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib.errors import InvalidField

IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,63}")
MAX_SAFE_INT = 2**53 - 1  # JSON numbers beyond this lose precision in many clients


def ident(body: Mapping[str, Any], field: str) -> str:
    """A required identifier: 1-64 characters of `[A-Za-z0-9.-]`, starting alphanumeric."""
    value = body.get(field)
    if value is None:
        raise InvalidField(field, "is required")
    if not isinstance(value, str) or not IDENT.fullmatch(value):
        raise InvalidField(field, "must be 1-64 characters of letters, digits, '.' or '-'")
    return value


def path_ident(value: str, field: str) -> str:
    """An identifier taken from the URL path."""
    if not IDENT.fullmatch(value or ""):
        raise InvalidField(field, "must be 1-64 characters of letters, digits, '.' or '-'")
    return value


def integer(body: Mapping[str, Any], field: str, minimum: int = 0, maximum: int = MAX_SAFE_INT,
            required: bool = True, default: int | None = None) -> int:
    """An integer (JSON booleans and floats refused) within [minimum, maximum]."""
    value = body.get(field)
    if value is None:
        if required:
            raise InvalidField(field, "is required")
        return default  # type: ignore[return-value]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidField(field, "must be an integer")
    if not minimum <= value <= maximum:
        raise InvalidField(field, f"must be between {minimum} and {maximum}")
    return value


def boolean(body: Mapping[str, Any], field: str, default: bool | None = None) -> bool:
    """A JSON boolean; required unless a default is given."""
    value = body.get(field)
    if value is None:
        if default is None:
            raise InvalidField(field, "is required")
        return default
    if not isinstance(value, bool):
        raise InvalidField(field, "must be true or false")
    return value


def choice(body: Mapping[str, Any], field: str, allowed: Iterable[str], default: str | None = None) -> str:
    """One of a fixed set of strings."""
    options = sorted(allowed)
    value = body.get(field, default)
    if value is None:
        raise InvalidField(field, f"is required (one of {', '.join(options)})")
    if value not in options:
        raise InvalidField(field, f"must be one of {', '.join(options)}")
    return value


def text(body: Mapping[str, Any], field: str, max_len: int = 256, default: str | None = None) -> str:
    """Free text of bounded length; required unless a default is given."""
    value = body.get(field, default)
    if value is None:
        raise InvalidField(field, "is required")
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidField(field, f"must be a string of at most {max_len} characters")
    return value


def no_unknown_fields(body: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Refuse fields the endpoint does not know, so a typo is an error rather than silently ignored."""
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise InvalidField(unknown[0], "is not a known field")


def encode_cursor(last_evaluated_key: Mapping[str, Any] | None) -> str | None:
    """Opaque pagination cursor for a DynamoDB `LastEvaluatedKey` (None when there is no next page)."""
    if not last_evaluated_key:
        return None
    raw = json.dumps(last_evaluated_key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


MAX_KEY_BYTES = 1024  # DynamoDB's limit for a sort key (a partition key: 2 048)


def _utf8_len(text: str) -> int:
    """Bytes of `text` in UTF-8; -1 for text no store can hold (a lone surrogate, from a JSON escape)."""
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        return -1


def decode_cursor(raw: str | None, expected_keys: Mapping[str, str]) -> dict[str, Any] | None:
    """Decode a `cursor` query parameter back into a `LastEvaluatedKey`.

    `expected_keys` maps each key attribute to the value it must hold (or "" for any string), so a
    cursor forged or copied from another listing is refused instead of reading someone else's page.
    """
    if raw is None:
        return None
    problem = InvalidField("cursor", "is not a cursor returned by this listing")
    try:
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: JSON nested too deeply
        raise problem from exc
    if not isinstance(decoded, dict) or set(decoded) != set(expected_keys):
        raise problem
    for name, value in decoded.items():
        if not isinstance(value, dict) or len(value) != 1:
            raise problem
        (kind, data), = value.items()
        # Every key these listings page over is a string: a key typed "N", an empty one, or one longer than
        # DynamoDB allows in a key (1 024 bytes) would reach the query and fail there (a 5xx).
        if kind != "S" or not isinstance(data, str) or not 0 < _utf8_len(data) <= MAX_KEY_BYTES:
            raise problem
        if expected_keys[name] and data != expected_keys[name]:
            raise problem
    return decoded
