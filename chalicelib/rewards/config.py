"""Configuration documents — activities, child windows, scenes, switches — and their validation.

Pure: parsing a request body yields a frozen document or an error naming the field. Storage lives
in `chalicelib.rewards.config_store`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from chalicelib import validate
from chalicelib.errors import (
    InvalidField,
    OutsideActivityWindow,
    OverlappingWindows,
    SwitchedOff,
    SwitchNameRetired,
)
from chalicelib.rewards.ids import AWARD_TYPES, CASH, COUPON, asset_of, child_ns, gray_admits

PURPOSES = ("internal_test", "gray_rehearsal", "formal")
MAX_CHILDREN = 16
MAX_SHARDS = 4000
MAX_AMOUNT = 10**12
# How far ahead of the server's clock a grant's open_time_ms may be (the caller's clock may run fast).
OPEN_TIME_AHEAD_MS = 300_000
# How far apart two servers' clocks may be (the terms-change lead, reconciliation and late marks allow for it).
CLOCK_SKEW_MS = 60_000
# A Lambda runs at most 15 minutes: a batch whose last credit is older than this can no longer be writing.
MAX_INVOCATION_MS = 15 * 60 * 1000


@dataclass(frozen=True)
class Child:
    """A child activity: one time window with one purpose; its data never mixes with another's."""

    sub_activity_id: str
    purpose: str
    starts_at_ms: int
    ends_at_ms: int

    def covers(self, at_ms: int) -> bool:
        """Whether an instant falls in this child's half-open window [starts_at_ms, ends_at_ms)."""
        return self.starts_at_ms <= at_ms < self.ends_at_ms


@dataclass(frozen=True)
class Activity:
    """A parent activity and its child activities, ordered by start time."""

    activity_id: str
    name: str
    children: tuple[Child, ...]

    def child_at(self, at_ms: int) -> Child:
        """The child whose window holds `at_ms`; `OutsideActivityWindow` if none does."""
        for child in self.children:
            if child.covers(at_ms):
                return child
        raise OutsideActivityWindow(
            f"activity {self.activity_id} has no child activity open at {at_ms}", activity_id=self.activity_id
        )

    def wallet_child_at(self, at_ms: int) -> Child:
        """The child whose wallets a user sees at `at_ms`: the open one, else the latest that has started.

        Users keep reading and withdrawing their balance after a child's window has closed.
        """
        started = [c for c in self.children if c.starts_at_ms <= at_ms]
        if not started:
            raise OutsideActivityWindow(
                f"activity {self.activity_id} has not started at {at_ms}", activity_id=self.activity_id
            )
        return max(started, key=lambda c: c.starts_at_ms)

    def child(self, sub_activity_id: str) -> Child | None:
        """A child by id."""
        return next((c for c in self.children if c.sub_activity_id == sub_activity_id), None)

    def ns(self, child: Child) -> str:
        """Key namespace of one of this activity's children."""
        return child_ns(self.activity_id, child.sub_activity_id)

    def to_body(self) -> dict[str, Any]:
        """JSON form, as stored and as returned by the admin API."""
        return {"activity_id": self.activity_id, "name": self.name, "children": [asdict(c) for c in self.children]}


@dataclass(frozen=True)
class Terms:
    """What an order's identity depends on in its scene, from `from_ms` (by open time): award type and template.

    They fix the order's asset and so its wallet, part of its storage key. A scene keeps every set of terms a
    grant within the retry horizon may still name (`Scene.terms_at`), so a retry of an order won before a change
    maps to the key of the first attempt, whatever the scene says now.
    """

    from_ms: int
    award_type: str
    template_id: str | None = None

    @property
    def asset(self) -> str:
        """`CNY` or `coupon:{template_id}`."""
        return asset_of(self.award_type, self.template_id)


@dataclass(frozen=True)
class Scene:
    """How one scene of an activity grants: award type, caps, stock/budget control, limits."""

    activity_id: str
    scene_id: str
    award_type: str
    order_cap: int
    total: int
    stock_control: bool
    shard_count: int
    rate_limit_per_s: int
    reconcile: bool
    bill_text: str
    template_id: str | None = None
    version: int = field(default=0, compare=False)
    # Former and current terms by open time (oldest first); empty: the scene's own, since ever.
    history: tuple[Terms, ...] = field(default=(), compare=False)

    @property
    def asset(self) -> str:
        """What this scene's rewards credit under its newest terms: `CNY` or `coupon:{template_id}`."""
        return asset_of(self.award_type, self.template_id)

    def terms_at(self, open_time_ms: int) -> Terms:
        """The terms of a reward won at `open_time_ms`: the latest that took effect at or before it."""
        history = self.history or (Terms(0, self.award_type, self.template_id),)
        chosen = history[0]
        for terms in history:
            if terms.from_ms <= open_time_ms:
                chosen = terms
        return chosen

    def to_body(self) -> dict[str, Any]:
        """JSON form, as returned by the admin API (the history is stored beside it: `history_body`)."""
        body = asdict(self)
        body.pop("version")
        body.pop("history")
        return body

    def history_body(self) -> list[dict[str, Any]]:
        """The terms history as stored."""
        return [asdict(t) for t in self.history]


def terms_lead_ms(cache_s: int) -> int:
    """How far after a change of terms is saved it takes effect (by open time).

    No grant may already have chosen the old terms for an open time at or after the change: a grant arriving
    before the save, or reading a configuration cached up to `cache_s` before it, names an open time at most
    `OPEN_TIME_AHEAD_MS` past its clock, which may run `CLOCK_SKEW_MS` ahead of the saver's.
    """
    return OPEN_TIME_AHEAD_MS + cache_s * 1000 + CLOCK_SKEW_MS


def next_history(previous: Scene | None, scene: Scene, now_ms: int, lead_ms: int,
                 horizon_ms: int) -> tuple[Terms, ...]:
    """The history to store with `scene` replacing `previous` at `now_ms`. Pure.

    Append-only within the retry horizon: new terms take effect `lead_ms` from now; terms no grant inside the
    horizon can name any more (their successor took effect before `now - horizon - lead`) are dropped.
    """
    new = Terms(0, scene.award_type, scene.template_id)
    if previous is None:
        return (new,)
    history = previous.history or (Terms(0, previous.award_type, previous.template_id),)
    last = history[-1]
    if (last.award_type, last.template_id) != (new.award_type, new.template_id):
        history = (*history, Terms(max(now_ms + lead_ms, last.from_ms + 1), new.award_type, new.template_id))
    cutoff = now_ms - horizon_ms - lead_ms
    while len(history) > 1 and history[1].from_ms <= cutoff:
        history = history[1:]
    return history


def parse_activity(activity_id: str, body: Mapping[str, Any]) -> Activity:
    """Validate an activity document; child windows must not overlap."""
    validate.no_unknown_fields(body, {"name", "children", "activity_id"})
    if body.get("activity_id", activity_id) != activity_id:
        raise InvalidField("activity_id", "must match the id in the path")
    name = validate.text(body, "name", max_len=128, default="")
    raw_children = body.get("children")
    if not isinstance(raw_children, list) or not 1 <= len(raw_children) <= MAX_CHILDREN:
        raise InvalidField("children", f"must be a list of 1 to {MAX_CHILDREN} child activities")
    children = []
    for index, raw in enumerate(raw_children):
        where = f"children[{index}]"
        if not isinstance(raw, dict):
            raise InvalidField(where, "must be an object")
        try:
            validate.no_unknown_fields(raw, {"sub_activity_id", "purpose", "starts_at_ms", "ends_at_ms"})
            child = Child(
                sub_activity_id=validate.ident(raw, "sub_activity_id"),
                purpose=validate.choice(raw, "purpose", PURPOSES),
                starts_at_ms=validate.integer(raw, "starts_at_ms"),
                ends_at_ms=validate.integer(raw, "ends_at_ms"),
            )
        except InvalidField as exc:
            raise InvalidField(f"{where}.{exc.details['field']}", exc.message.split(": ", 1)[1]) from exc
        if child.ends_at_ms <= child.starts_at_ms:
            raise InvalidField(f"{where}.ends_at_ms", "must be after starts_at_ms")
        children.append(child)
    ids = [c.sub_activity_id for c in children]
    if len(set(ids)) != len(ids):
        raise InvalidField("children", "sub_activity_id values must be unique")
    ordered = sorted(children, key=lambda c: c.starts_at_ms)
    for earlier, later in itertools.pairwise(ordered):
        if later.starts_at_ms < earlier.ends_at_ms:
            raise OverlappingWindows(
                f"child activities {earlier.sub_activity_id} and {later.sub_activity_id} overlap",
                children=[earlier.sub_activity_id, later.sub_activity_id],
            )
    return Activity(activity_id=activity_id, name=name, children=tuple(ordered))


DEFAULT_BILL_TEXT = {CASH: "cash reward", COUPON: "coupon"}
SCENE_FIELDS = {
    "award_type", "template_id", "order_cap", "total", "stock_control", "shard_count", "rate_limit_per_s",
    "reconcile", "bill_text", "activity_id", "scene_id",
}


def parse_scene(activity_id: str, scene_id: str, body: Mapping[str, Any], version: int = 0) -> Scene:
    """Validate a scene document."""
    validate.no_unknown_fields(body, SCENE_FIELDS)
    for key, expected in (("activity_id", activity_id), ("scene_id", scene_id)):
        if body.get(key, expected) != expected:
            raise InvalidField(key, "must match the id in the path")
    award_type = validate.choice(body, "award_type", AWARD_TYPES)
    template_id = None
    if award_type == COUPON:
        template_id = validate.ident(body, "template_id")
    elif body.get("template_id") is not None:
        raise InvalidField("template_id", "is only for coupon scenes")
    stock_control = validate.boolean(body, "stock_control", default=True)
    return Scene(
        activity_id=activity_id,
        scene_id=scene_id,
        award_type=award_type,
        template_id=template_id,
        order_cap=validate.integer(body, "order_cap", minimum=1, maximum=MAX_AMOUNT),
        total=validate.integer(body, "total", minimum=0, maximum=MAX_AMOUNT, required=stock_control, default=0),
        stock_control=stock_control,
        shard_count=validate.integer(body, "shard_count", minimum=1, maximum=MAX_SHARDS, required=False, default=4),
        rate_limit_per_s=validate.integer(body, "rate_limit_per_s", minimum=0, required=False, default=0),
        reconcile=validate.boolean(body, "reconcile", default=True),
        bill_text=validate.text(body, "bill_text", max_len=128, default=DEFAULT_BILL_TEXT[award_type]),
        version=version,
    )


# --- switches --------------------------------------------------------------------------------

GRANTS = "grants"
TOKEN_ISSUANCE = "token_issuance"  # noqa: S105 - a switch name, not a secret
WITHDRAWALS = "withdrawals"
WITHDRAWAL_GRAY_PERCENT = "withdrawal_gray_percent"
# ':' is not allowed in ids, so `grants:{activity}:{scene}` splits one way only. The former
# `grants.{activity}.{scene}` did not: `grants.a.b.c` named both a / b.c and a.b / c.
SCENE_GRANTS_FORMAT = "grants:<activity>:<scene>"
_SCENE_GRANTS = re.compile(rf"grants:({validate.IDENT.pattern}):({validate.IDENT.pattern})")
ON_OFF_SWITCHES = (GRANTS, TOKEN_ISSUANCE, WITHDRAWALS)


def scene_grants_switch(activity_id: str, scene_id: str) -> str:
    """Name of the switch that turns grants of one scene on or off."""
    return f"grants:{activity_id}:{scene_id}"


def retired_scene_grants_switch(activity_id: str, scene_id: str) -> str:
    """The scene's switch name in the retired form (still honoured when stored before the change)."""
    return f"grants.{activity_id}.{scene_id}"


def retired_readings(name: str) -> list[str]:
    """Every `grants:{activity}:{scene}` a retired `grants.{activity}.{scene}` name could mean (sorted)."""
    if not name.startswith("grants."):
        return []
    rest = name.removeprefix("grants.")
    splits = ((rest[:i], rest[i + 1:]) for i, char in enumerate(rest) if char == ".")
    return sorted(scene_grants_switch(a, s) for a, s in splits
                  if validate.IDENT.fullmatch(a) and validate.IDENT.fullmatch(s))


def parse_switch(name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a switch value: `{"enabled": bool}`, or `{"percent": 0..100}` for the gray switch."""
    if name == WITHDRAWAL_GRAY_PERCENT:
        validate.no_unknown_fields(body, {"percent"})
        return {"percent": validate.integer(body, "percent", minimum=0, maximum=100)}
    if name in ON_OFF_SWITCHES or _SCENE_GRANTS.fullmatch(name):
        validate.no_unknown_fields(body, {"enabled"})
        return {"enabled": validate.boolean(body, "enabled")}
    readings = retired_readings(name)
    if readings:
        raise SwitchNameRetired(
            f"switch name {name} is the retired grants.<activity>.<scene> form, ambiguous when ids contain '.'; "
            f"use {SCENE_GRANTS_FORMAT}: {' or '.join(readings)}",
            field="name", expected_format=SCENE_GRANTS_FORMAT, candidates=readings,
        )
    raise InvalidField(
        "name",
        f"unknown switch; known: {', '.join(ON_OFF_SWITCHES)}, {WITHDRAWAL_GRAY_PERCENT}, {SCENE_GRANTS_FORMAT}",
    )


@dataclass(frozen=True)
class Switches:
    """The degradation switches in force; an absent switch is on (and the gray rollout at 100 %)."""

    values: Mapping[str, Mapping[str, Any]]

    def enabled(self, name: str) -> bool:
        """Whether an on/off switch is on."""
        return bool(self.values.get(name, {}).get("enabled", True))

    def require_grants(self, activity_id: str, scene_id: str) -> None:
        """Refuse a grant when grants are off globally or for this scene.

        A scene's switch stored under the retired name (before the change) still applies, to every scene it
        could mean, until the scene's `grants:{activity}:{scene}` switch is set: failing closed, never open.
        """
        scene = scene_grants_switch(activity_id, scene_id)
        if scene not in self.values:
            scene = retired_scene_grants_switch(activity_id, scene_id)
        for name in (GRANTS, scene):
            if not self.enabled(name):
                raise SwitchedOff(f"grants are switched off ({name})", switch=name)

    def require_withdrawal(self, act_id: str) -> None:
        """Refuse a withdrawal when withdrawals are off or the user is outside the gray rollout."""
        if not self.enabled(WITHDRAWALS):
            raise SwitchedOff("withdrawals are switched off", switch=WITHDRAWALS)
        percent = int(self.values.get(WITHDRAWAL_GRAY_PERCENT, {}).get("percent", 100))
        if not gray_admits(act_id, percent):
            raise SwitchedOff("withdrawals are not yet open to this user", switch=WITHDRAWAL_GRAY_PERCENT)
