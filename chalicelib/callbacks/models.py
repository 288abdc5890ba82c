"""The callback gateway's HTTP contract: the platform's envelope (documented; parsed by `envelope`, which
keeps numbers as their exact text for the signature) and the read API's answers."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from chalicelib.edge.models import Cursor, QueryModel, ResponseModel

TextOrNumber = str | int


class CallbackEnvelope(ResponseModel):
    """What the platform POSTs: `Encrypt` is AES-256-CBC ciphertext, `MsgSignature` its sorted-SHA1 signature."""

    TimeStamp: TextOrNumber = Field(description="whole seconds since the epoch (a string or a number)")
    Nonce: TextOrNumber
    Encrypt: str
    MsgSignature: str


class Aspect(ResponseModel):
    """The newest state of one aspect of an app, and the event that set it."""

    data: Any
    event_type: str
    event_id: str
    event_time_ms: int
    event_time: str


class AppStateView(ResponseModel):
    """An authorized app's authorization, profile and review state."""

    tp_app_id: str
    app_id: str
    authorization: Aspect | None
    profile: Aspect | None
    review: dict[str, Any]


class EventsQuery(Cursor, QueryModel):
    """Filter and page of the stored events."""

    type: Annotated[str | None, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$"),
                    Field(description="only events of this Event type")] = None


class EventView(ResponseModel):
    """One stored callback."""

    event_id: str
    event_type: str
    app_id: str | None
    status: str
    channel: str
    note: str | None
    received_at_ms: int
    received_at: str
    applied_at_ms: int | None
    payload: Any


class EventPage(ResponseModel):
    """One page of stored callbacks, newest first."""

    items: list[EventView]
    next_cursor: str | None
