"""Redaction of credentials in what the read API serves from stored callbacks.

A tp app's callbacks carry credentials in all but name: the component ticket (`Ticket`, from which the
component access token is obtained) and each authorization's `AuthorizationCode` (exchanged for the
authorizer's tokens). The events table keeps them (the event worker needs them); the read API
(`/v1/tp-apps/...`, the `read` caller policy: on-call, dashboards) serves them as `[redacted]`, every other
field as stored. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

REDACTED = "[redacted]"
# Field names (compared lower-cased, without "_") whose values are credentials, in the platform's
# payloads (PascalCase) and in rewardgate's own app state (snake_case).
CREDENTIAL_FIELDS = frozenset({
    "ticket", "componentverifyticket", "authorizationcode", "preauthcode", "componentaccesstoken",
    "authorizeraccesstoken", "authorizerrefreshtoken", "accesstoken", "refreshtoken",
})


def is_credential(name: str) -> bool:
    """Whether a field of this name holds a credential."""
    return name.replace("_", "").lower() in CREDENTIAL_FIELDS


def redact(value: Any) -> Any:
    """A copy of a JSON value with every credential field's value replaced by `[redacted]` (at any depth)."""
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and is_credential(k) and v not in (None, "")
                else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
