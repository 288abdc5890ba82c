"""The local scheduler: fire every `@app.schedule` handler at its rate, as EventBridge would.

Expressions follow EventBridge's syntax (all times UTC):
- `rate(N minute|minutes|hour|hours|day|days)`, singular exactly when N is 1 (AWS rejects
  `rate(1 minutes)` at deploy time, so the local stack rejects it too). Like a fresh EventBridge rule,
  a rate first fires one period after the stack starts.
- `cron(minutes hours day-of-month month day-of-week year)` with numbers, names (JAN-DEC, SUN-SAT),
  `*`, `?`, lists, ranges and steps. Day-of-week counts 1-7 from Sunday, and exactly one of
  day-of-month / day-of-week must be `?`. `L`, `W` and `#` are not supported locally: such a
  schedule is reported (in the start-up table and the log) and does not fire; nothing crashes.

A handler's exception is logged and the schedule keeps firing, as a failed Lambda invocation does
not disable its rule.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from rewardgate_ops.errors import OpsError
from rewardgate_ops.lambda_events import LocalLambdaContext, scheduled_event

log = logging.getLogger("rewardgate_ops.local")

Handler = Callable[[dict[str, Any], Any], Any]


class UnsupportedSchedule(OpsError, ValueError):
    """An expression the local scheduler cannot run; the message says which part and why."""


class Schedule(Protocol):
    """A parsed schedule expression."""

    expression: str

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after `after`, or None if it never fires again."""
        ...


def expression_text(expression: Any) -> str:
    """The text of a schedule expression: a string, or a chalice `Rate`/`Cron` (via `to_string()`)."""
    if isinstance(expression, str):
        return expression.strip()
    to_string = getattr(expression, "to_string", None)
    if callable(to_string):
        return str(to_string()).strip()
    raise UnsupportedSchedule(f"schedule expression of type {type(expression).__name__} is not understood")


# --- rate ----------------------------------------------------------------------------------------

_RATE = re.compile(r"rate\(\s*(\d+)\s+([a-z]+)\s*\)")
_RATE_UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


@dataclass(frozen=True)
class RateSchedule:
    """`rate(...)`: every `period`, counted from `anchor` (when the rule was created)."""

    expression: str
    period: timedelta
    anchor: datetime

    def next_after(self, after: datetime) -> datetime:
        """The first `anchor + k * period` (k >= 1) strictly after `after`."""
        elapsed = after - self.anchor
        k = max(1, elapsed // self.period + 1)
        return self.anchor + k * self.period


def parse_rate(text: str, anchor: datetime) -> RateSchedule:
    """A `rate(N unit)` expression, by EventBridge's rules."""
    found = _RATE.fullmatch(text)
    if not found:
        raise UnsupportedSchedule(f"{text!r} is not a rate expression like 'rate(5 minutes)'")
    value, unit = int(found.group(1)), found.group(2)
    singular = unit.removesuffix("s")
    if singular not in _RATE_UNITS:
        raise UnsupportedSchedule(f"{text!r}: unit must be minute(s), hour(s) or day(s)")
    if value < 1:
        raise UnsupportedSchedule(f"{text!r}: the value must be a positive integer")
    if (value == 1) != (unit == singular):
        expected = f"rate(1 {singular})" if value == 1 else f"rate({value} {singular}s)"
        raise UnsupportedSchedule(f"{text!r}: EventBridge requires {expected!r} (singular only for 1)")
    return RateSchedule(expression=text, period=value * _RATE_UNITS[singular], anchor=anchor)


# --- cron ----------------------------------------------------------------------------------------

_MONTHS = {m: i for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_FIELDS = (
    _Field("minutes", 0, 59),
    _Field("hours", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day-of-week", 1, 7, _DAYS),
    _Field("year", 1970, 2199),
)


def _value(token: str, spec: _Field, text: str) -> int:
    upper = token.upper()
    if spec.names and upper in spec.names:
        return spec.names[upper]
    if not token.isdigit():
        raise UnsupportedSchedule(f"{text!r}: {spec.name} value {token!r} is not a number or name")
    number = int(token)
    if not spec.low <= number <= spec.high:
        raise UnsupportedSchedule(f"{text!r}: {spec.name} value {number} is outside {spec.low}-{spec.high}")
    return number


def _parse_field(raw: str, spec: _Field, text: str) -> frozenset[int] | None:
    """The values a cron field allows; None for `?` (no constraint from this field)."""
    if raw == "?":
        if spec.name not in ("day-of-month", "day-of-week"):
            raise UnsupportedSchedule(f"{text!r}: '?' is only allowed in day-of-month or day-of-week")
        return None
    for marker, meaning in (("L", "last"), ("W", "nearest weekday"), ("#", "nth weekday")):
        # Month and day names contain these letters; only a bare marker means the special syntax.
        stripped = raw.upper()
        for name in (spec.names or {}):
            stripped = stripped.replace(name, "")
        if marker in stripped:
            raise UnsupportedSchedule(
                f"{text!r}: '{marker}' ({meaning}) in {spec.name} is not supported by the local scheduler; "
                "it works on AWS but will not fire locally"
            )
    values: set[int] = set()
    for part in raw.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise UnsupportedSchedule(f"{text!r}: step {step_text!r} in {spec.name} must be a positive integer")
            step = int(step_text)
        if base == "*":
            low, high = spec.low, spec.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(first, spec, text), _value(last, spec, text)
            if low > high:
                raise UnsupportedSchedule(
                    f"{text!r}: wrap-around range {base!r} in {spec.name} is not supported locally"
                )
        else:
            low = _value(base, spec, text)
            high = spec.high if step_text else low
        values.update(range(low, high + 1, step))
    return frozenset(values)


def _aws_day_of_week(day: date) -> int:
    """EventBridge numbering: 1 = Sunday ... 7 = Saturday (Python's weekday() has Monday = 0)."""
    return (day.weekday() + 1) % 7 + 1


# Far enough to find 29 February from any year, near enough to stay cheap.
_CRON_HORIZON_DAYS = 8 * 366


@dataclass(frozen=True)
class CronSchedule:
    """`cron(...)`: the minutes whose every field matches."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int] | None
    months: frozenset[int]
    days_of_week: frozenset[int] | None
    years: frozenset[int]

    def _day_matches(self, day: date) -> bool:
        if day.year not in self.years or day.month not in self.months:
            return False
        if self.days_of_month is not None and day.day not in self.days_of_month:
            return False
        return self.days_of_week is None or _aws_day_of_week(day) in self.days_of_week

    def next_after(self, after: datetime) -> datetime | None:
        """The first matching minute strictly after `after` (UTC), or None within the horizon."""
        start = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.date()
        last_year = max(self.years)
        for _ in range(_CRON_HORIZON_DAYS):
            if day.year > last_year:
                return None
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                        if candidate >= start:
                            return candidate
            day += timedelta(days=1)
        return None


def parse_cron(text: str) -> CronSchedule:
    """A `cron(...)` expression with six fields, by EventBridge's rules (minus L, W and #)."""
    if not (text.startswith("cron(") and text.endswith(")")):
        raise UnsupportedSchedule(f"{text!r} is not a cron expression like 'cron(0 12 * * ? *)'")
    fields = text[5:-1].split()
    if len(fields) != 6:
        raise UnsupportedSchedule(
            f"{text!r}: EventBridge cron has 6 fields (minutes hours day-of-month month day-of-week year), "
            f"got {len(fields)}"
        )
    parsed = [_parse_field(raw, spec, text) for raw, spec in zip(fields, _FIELDS, strict=True)]
    minutes, hours, dom, months, dow, years = parsed
    if (dom is None) == (dow is None):
        raise UnsupportedSchedule(f"{text!r}: exactly one of day-of-month and day-of-week must be '?'")
    return CronSchedule(
        expression=text, minutes=minutes, hours=hours, days_of_month=dom,  # type: ignore[arg-type]
        months=months, days_of_week=dow, years=years,  # type: ignore[arg-type]
    )


def parse_schedule(expression: Any, anchor: datetime) -> Schedule:
    """A rate or cron schedule; `anchor` is when a rate starts counting (the stack's start)."""
    text = expression_text(expression)
    if text.startswith("rate("):
        return parse_rate(text, anchor)
    if text.startswith("cron("):
        return parse_cron(text)
    raise UnsupportedSchedule(f"{text!r} is neither rate(...) nor cron(...)")


# --- running -------------------------------------------------------------------------------------


class Clock(Protocol):
    """Time for the scheduler; tests pass one that jumps instead of sleeping."""

    def now(self) -> datetime:
        """The current UTC time."""
        ...

    def sleep_until(self, when: datetime, stop: threading.Event) -> bool:
        """Wait until `when`; True if `stop` was set first."""
        ...


class WallClock:
    """Real time. Waits in short slices so a suspended laptop or a clock change is noticed."""

    slice_s = 30.0

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    def sleep_until(self, when: datetime, stop: threading.Event) -> bool:
        """Wait until `when`; True if `stop` was set first."""
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return stop.is_set()
            if stop.wait(min(remaining, self.slice_s)):
                return True


@dataclass
class ScheduledJob:
    """One `ScheduledEventConfig`, resolved: what to call and when."""

    name: str
    expression: Any
    handler: Handler
    handler_string: str = ""
    timeout_s: float = 60


def fire(job: ScheduledJob) -> bool:
    """Invoke the handler once with a real scheduled event; False (and a logged traceback) if it raised."""
    started = time.monotonic()
    try:
        job.handler(scheduled_event(job.name), LocalLambdaContext(job.name, job.timeout_s))
    except Exception:
        log.exception("schedule %s: handler raised; it will fire again at its next time", job.name)
        return False
    log.info("schedule %s: fired (%.0f ms)", job.name, (time.monotonic() - started) * 1000)
    return True


def run_schedule(job: ScheduledJob, stop: threading.Event, clock: Clock | None = None) -> None:
    """Fire `job` at every due time until `stop` is set. Never raises."""
    clock = clock or WallClock()
    try:
        schedule = parse_schedule(job.expression, anchor=clock.now())
    except UnsupportedSchedule as exc:
        log.warning("schedule %s will not fire locally: %s", job.name, exc)
        return
    after = clock.now()
    while not stop.is_set():
        due = schedule.next_after(after)
        if due is None:
            log.warning("schedule %s: %s never fires again", job.name, schedule.expression)
            return
        if clock.sleep_until(due, stop):
            return
        fire(job)
        # Fire times missed while a slow handler ran are skipped rather than replayed in a burst.
        after = max(due, clock.now())


def describe(expression: Any, now: datetime) -> str:
    """One line for the start-up table: the expression and its next fire time, or why it won't fire."""
    try:
        schedule = parse_schedule(expression, anchor=now)
    except UnsupportedSchedule as exc:
        return f"NOT RUN LOCALLY: {exc}"
    due = schedule.next_after(now)
    when = due.strftime("%Y-%m-%d %H:%M:%SZ") if due else "never"
    return f"{schedule.expression}  next {when}"


def start_schedule_thread(job: ScheduledJob, stop: threading.Event, clock: Clock | None = None) -> threading.Thread:
    """Run `job` in a daemon thread (a hung handler must not keep the process alive at exit)."""
    thread = threading.Thread(target=run_schedule, args=(job, stop, clock), name=f"schedule-{job.name}", daemon=True)
    thread.start()
    return thread
