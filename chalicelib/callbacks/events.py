"""What a decrypted callback means: which state items it changes, at which event time, to what. Pure.

Every event becomes zero or more `AspectUpdate`s. An aspect is one independently ordered piece of
state: a tp app's component ticket, an app's authorization (status and code), its profile (name, icon,
company, masked admin contacts), or one review aspect (its name review, its package audit on one host,
one share template, ...). An update always carries the aspect's whole new content, never a patch, and
an aspect only moves forward in (event time, event id) order (`supersedes`). So each aspect ends up
holding exactly what its newest event says, whatever order duplicates and late deliveries come in.
(Patches would break that: a patch applied before an older full event would be lost or mixed.)

To add an event type: write a function `payload -> list[AspectUpdate]` (raise `Malformed` for a payload
it cannot use), register it in `HANDLERS`, and add a sample in `rewardgate_ops/sample_events.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, unquote

from chalicelib.validate import IDENT

PLATFORM_TZ = timezone(timedelta(hours=8))
PLATFORM_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
EVENT_TYPE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
INVALID_EVENT_TYPE = "INVALID"
MAX_KEY_CHARS = 128

TICKET_ITEM_KEY = "#ticket"
AUTHORIZATION = ("authorization",)
PROFILE = ("profile",)
REVIEW = "review"

# Outcomes the worker records on the event once it is done with it.
APPLIED = "APPLIED"
UNKNOWN = "UNKNOWN"
MALFORMED = "MALFORMED"


class Malformed(ValueError):
    """A genuine event whose content cannot be applied (missing app id, unreadable time, ...)."""


# --- time ------------------------------------------------------------------------------------


def parse_platform_time(text: Any) -> int:
    """Milliseconds since the epoch for the platform's `yyyy-MM-dd HH:mm:ss` (UTC+8)."""
    if not isinstance(text, str):
        raise Malformed("event time is missing or not a string")
    try:
        moment = datetime.strptime(text, PLATFORM_TIME_FORMAT).replace(tzinfo=PLATFORM_TZ)
    except ValueError as exc:
        raise Malformed(f"event time {text[:40]!r} is not yyyy-MM-dd HH:mm:ss") from exc
    return int(moment.timestamp()) * 1000


def format_platform_time(ms: int) -> str:
    """The platform's `yyyy-MM-dd HH:mm:ss` (UTC+8) for an instant."""
    return datetime.fromtimestamp(ms / 1000, tz=PLATFORM_TZ).strftime(PLATFORM_TIME_FORMAT)


def iso_time(ms: int) -> str:
    """ISO 8601 in the platform's zone, e.g. `2024-05-01T12:00:00+08:00`, for API answers."""
    return datetime.fromtimestamp(ms / 1000, tz=PLATFORM_TZ).isoformat(timespec="seconds")


# --- masking ---------------------------------------------------------------------------------


def mask_email(value: Any) -> str | None:
    """Keep the first character and the domain; idempotent on the platform's own masks."""
    if not isinstance(value, str) or not value:
        return None
    local, at, domain = value.rpartition("@")
    if not at:
        return "***"
    head = local[:1] if local[:1] not in ("", "*") else ""
    return f"{head}***@{domain}"


def mask_mobile(value: Any) -> str | None:
    """Keep the first three and last four characters (`138****5678`); idempotent on masks."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) < 8:
        return "****"
    return f"{value[:3]}****{value[-4:]}"


# --- the decision types ----------------------------------------------------------------------


@dataclass(frozen=True)
class AspectUpdate:
    """The whole new content (`fields`) of one state item, as of `event_time_ms`."""

    scope: str  # the app id; "" for the tp app's own items (the component ticket)
    aspect: tuple[str, ...]
    event_time_ms: int
    fields: Mapping[str, Any]

    @property
    def item_key(self) -> str:
        """Range key of the state item: `{app_id}#authorization`, `{app_id}#review#name`, `#ticket`."""
        if not self.scope:
            return "#" + "#".join(quote(part, safe="") for part in self.aspect)
        return self.scope + "#" + "#".join(quote(part, safe="") for part in self.aspect)


def aspect_of(item_key: str) -> tuple[str, tuple[str, ...]]:
    """Inverse of `AspectUpdate.item_key`: (app id or "", aspect parts)."""
    scope, *parts = item_key.split("#")
    return scope, tuple(unquote(part) for part in parts)


@dataclass(frozen=True)
class Interpretation:
    """What the worker should do with one event."""

    outcome: str  # APPLIED (apply `updates`), UNKNOWN or MALFORMED (apply nothing)
    updates: tuple[AspectUpdate, ...] = field(default_factory=tuple)
    note: str | None = None


@dataclass(frozen=True)
class Summary:
    """What the gateway records about a payload before anything is applied."""

    event_type: str
    app_id: str | None


def supersedes(candidate: tuple[int, str], stored: tuple[int, str] | None) -> bool:
    """The ordering rule: (event time, event id) `candidate` replaces `stored` only if strictly newer.

    Ties on event time (the platform's clock has one-second resolution) are broken by event id, so the
    outcome never depends on arrival order; the same event again is not newer, so it changes nothing.
    The state adapter enforces exactly this rule as a DynamoDB condition.
    """
    return stored is None or candidate > stored


# --- reading a payload -----------------------------------------------------------------------


def load_payload(payload: str | bytes) -> dict[str, Any]:
    """The decrypted message as a JSON object."""
    try:
        value = json.loads(payload)
    except RecursionError as exc:
        raise Malformed("payload is nested too deeply") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise Malformed("payload is not JSON") from exc
    if not isinstance(value, dict):
        raise Malformed("payload is not a JSON object")
    return value


def summarize(payload: str | bytes) -> Summary:
    """Event type and app id of a payload, as far as they can be read (never raises)."""
    try:
        body = load_payload(payload)
    except Malformed:
        return Summary(INVALID_EVENT_TYPE, None)
    event = body.get("Event")
    app_id = body.get("AppId")
    return Summary(
        event_type=event if isinstance(event, str) and EVENT_TYPE.fullmatch(event) else INVALID_EVENT_TYPE,
        app_id=app_id if isinstance(app_id, str) and IDENT.fullmatch(app_id) else None,
    )


def _app_id(body: Mapping[str, Any]) -> str:
    app_id = body.get("AppId")
    if not isinstance(app_id, str) or not IDENT.fullmatch(app_id):
        raise Malformed("AppId is missing or not an app id")
    return app_id


def _object(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if not isinstance(value, dict):
        raise Malformed(f"{name} is missing or not an object")
    return value


def _objects(body: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    value = body.get(name)
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise Malformed(f"{name} is missing or not a list of objects")
    return value


def _key(container: Mapping[str, Any], name: str) -> str:
    value = container.get(name)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise Malformed(f"{name} is missing")
    text = str(value)
    if len(text) > MAX_KEY_CHARS:
        raise Malformed(f"{name} is longer than {MAX_KEY_CHARS} characters")
    return text


def _expires_in(body: Mapping[str, Any]) -> int | None:
    value = body.get("AuthorizationCodeExpiresIn")
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():  # not "²" (int refuses it) nor "٣"
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Malformed("AuthorizationCodeExpiresIn is not a number of seconds")
    return value


def _authorization_code(body: Mapping[str, Any], event_time_ms: int) -> dict[str, Any]:
    code = body.get("AuthorizationCode")
    if not isinstance(code, str) or not code:
        raise Malformed("AuthorizationCode is missing")
    expires_in = _expires_in(body)
    return {
        "authorization_code": code,
        "authorization_code_expires_in_s": expires_in,
        # The code's lifetime counts from when the platform issued it, not from when we applied it.
        "authorization_code_expires_at_ms": None if expires_in is None else event_time_ms + expires_in * 1000,
    }


def _event_time(body: Mapping[str, Any]) -> int:
    return parse_platform_time(body.get("EventTime"))


# --- one function per event type -------------------------------------------------------------


def _push(body: Mapping[str, Any]) -> list[AspectUpdate]:
    ticket = body.get("Ticket")
    if not isinstance(ticket, str) or not ticket:
        raise Malformed("Ticket is missing")
    created = parse_platform_time(body.get("CreateTime"))
    return [AspectUpdate("", ("ticket",), created, {"ticket": ticket, "create_time": body["CreateTime"]})]


def _authorized(body: Mapping[str, Any]) -> list[AspectUpdate]:
    app_id, at = _app_id(body), _event_time(body)
    profile = {
        "app_name": body.get("AppName"),
        "app_icon": body.get("AppIcon"),
        "company_name": body.get("CompanyName"),
        # Masked again on our side: idempotent on the platform's masks, and no clear PII if it ever sends one.
        "admin_email": mask_email(body.get("AppSuperAdminEmail")),
        "admin_mobile": mask_mobile(body.get("AppSuperAdminMobile")),
    }
    return [
        AspectUpdate(app_id, AUTHORIZATION, at, {"status": "AUTHORIZED", **_authorization_code(body, at)}),
        AspectUpdate(app_id, PROFILE, at, profile),
    ]


def _update_authorized(body: Mapping[str, Any]) -> list[AspectUpdate]:
    # A recovered authorization code; the profile (only AUTHORIZED carries it) is a separate aspect.
    at = _event_time(body)
    return [AspectUpdate(_app_id(body), AUTHORIZATION, at, {"status": "AUTHORIZED", **_authorization_code(body, at)})]


def _unauthorized(body: Mapping[str, Any]) -> list[AspectUpdate]:
    # The code dies with the authorization; the profile stays for whoever looks the app up later.
    return [AspectUpdate(_app_id(body), AUTHORIZATION, _event_time(body), {"status": "UNAUTHORIZED"})]


def _single_result(kind: str, result_field: str) -> Callable[[Mapping[str, Any]], list[AspectUpdate]]:
    def handler(body: Mapping[str, Any]) -> list[AspectUpdate]:
        return [AspectUpdate(_app_id(body), (REVIEW, kind), _event_time(body), _object(body, result_field))]

    return handler


def _name_reset(body: Mapping[str, Any]) -> list[AspectUpdate]:
    notice = body.get("AppNameResetNotification")
    if not isinstance(notice, str):
        raise Malformed("AppNameResetNotification is missing")
    return [AspectUpdate(_app_id(body), (REVIEW, "name_reset"), _event_time(body), {"notification": notice})]


def _categories(body: Mapping[str, Any]) -> list[AspectUpdate]:
    app_id, at = _app_id(body), _event_time(body)
    return [AspectUpdate(app_id, (REVIEW, "category", _key(result, "category")), at, result)
            for result in _objects(body, "ModifyAppCategoryResults")]


def _package_audit(body: Mapping[str, Any]) -> list[AspectUpdate]:
    app_id, at = _app_id(body), _event_time(body)
    return [AspectUpdate(app_id, (REVIEW, "package_audit", _key(result, "hostName")), at, result)
            for result in _objects(body, "AuditResults")]


def _share_template(body: Mapping[str, Any]) -> list[AspectUpdate]:
    result = _object(body, "ApplyShareTemplateResults")
    key = _key(result, "templateId")
    return [AspectUpdate(_app_id(body), (REVIEW, "share_template", key), _event_time(body), result)]


def _capacity(body: Mapping[str, Any]) -> list[AspectUpdate]:
    content = _object(body, "EventContent")
    key = _key(content, "capacity_key")
    return [AspectUpdate(_app_id(body), (REVIEW, "capacity", key), _event_time(body), content)]


def _self_mount(body: Mapping[str, Any]) -> list[AspectUpdate]:
    # One binding per (capability, Douyin account): binding a second account must not erase the first.
    content = _object(body, "EventContent")
    key = f"{_key(content, 'capacity_key')}/{_key(content, 'aweme_id')}"
    return [AspectUpdate(_app_id(body), (REVIEW, "self_mount", key), _event_time(body), content)]


HANDLERS: dict[str, Callable[[Mapping[str, Any]], list[AspectUpdate]]] = {
    "PUSH": _push,
    "AUTHORIZED": _authorized,
    "UPDATE_AUTHORIZED": _update_authorized,
    "UNAUTHORIZED": _unauthorized,
    "MODIFY_APP_NAME": _single_result("name", "ModifyAppNameResults"),
    "APP_NAME_RESET_NOTIFICATION": _name_reset,
    "MODIFY_APP_CATEGORY": _categories,
    "MODIFY_APP_INTRO": _single_result("intro", "ModifyAppIntroResults"),
    "MODIFY_APP_ICON": _single_result("icon", "ModifyAppIconResults"),
    "PACKAGE_AUDIT": _package_audit,
    "APPLY_VIDEO_CAPABILITY": _single_result("video_capability", "ApplyVideoCapabilityResults"),
    "APPLY_LIVE_CAPABILITY": _single_result("live_capability", "ApplyLiveCapabilityResults"),
    "APPLY_PHONE_NUMBER_CAPABILITY": _single_result("phone_number_capability", "ApplyPhoneNumberCapabilityResults"),
    "APPLY_SHARE_TEMPLATE": _share_template,
    "APPLY_CAPACITY": _capacity,
    "SELT_MOUNT_BIND": _self_mount,  # sic: the platform's spelling
}

KNOWN_EVENTS = frozenset(HANDLERS)


def interpret(tp_app_id: str, payload: str | bytes) -> Interpretation:
    """Decide what one stored event changes; unknown and unusable events change nothing."""
    try:
        body = load_payload(payload)
    except Malformed as exc:
        return Interpretation(MALFORMED, note=str(exc))
    event = body.get("Event")
    handler = HANDLERS.get(event) if isinstance(event, str) else None
    if handler is None:
        return Interpretation(UNKNOWN, note=f"no handler for Event {str(event)[:64]!r}")
    tp_in_payload = body.get("TpAppId")
    if tp_in_payload is not None and tp_in_payload != tp_app_id:
        return Interpretation(MALFORMED, note="TpAppId in the payload is not the tp app it was sent to")
    try:
        updates = handler(body)
    except Malformed as exc:
        return Interpretation(MALFORMED, note=str(exc))
    return Interpretation(APPLIED, tuple(updates))
